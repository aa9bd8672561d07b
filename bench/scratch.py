"""Scratch PostgreSQL databases for the benches, cloned from a migrated template so a bench starts in a
second instead of migrating for half a minute.

A bench never touches a real database: it creates `quanzi_bench_<label>_<pid>` next to DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/, loopback only) with `CREATE DATABASE … TEMPLATE`, and drops it at
the end. The template, `quanzi_bench_tpl_<hash of every migration file>`, is migrated once per set of
migrations and kept (it is what makes `make bench-quick` quick); `python bench/scratch.py --drop-templates`
removes the templates. Nothing here measures anything.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.core.standins import STAGING_OPT_INS, throwaway_secrets  # noqa: E402

TEMPLATE_PREFIX = "quanzi_bench_tpl_"
_LOCK_KEY = 0x5175616E  # pg_advisory_lock key: one process migrates a missing template, the others wait


def base_url() -> urllib.parse.ParseResult:
    """DATABASE_URL (or the local default), refusing anything but loopback PostgreSQL."""
    parsed = urllib.parse.urlparse(os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/")
    if not parsed.scheme.startswith("postgres"):
        raise SystemExit("the benches need PostgreSQL: set DATABASE_URL=postgresql://…")
    if parsed.hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit("bench: DATABASE_URL must point at loopback")
    return parsed


def admin_url() -> str:
    return base_url()._replace(path="/postgres").geturl()


def admin_sql(url: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


def template_name() -> str:
    digest = hashlib.sha256()
    for path in sorted(ROOT.glob("backend/*/migrations/*.py")):
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return TEMPLATE_PREFIX + digest.hexdigest()[:12]


def bench_environment() -> dict[str, str]:
    """What a bench's Django (in-process or a child Daphne) runs with: DEBUG off as production, the explicit
    development stand-ins (QUANZI_TESTING is refused there), fresh secrets shared by the whole process tree."""
    return {"LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "backend.settings", "PYTHONUNBUFFERED": "1",
            **STAGING_OPT_INS, **throwaway_secrets()}


def ensure_template() -> str:
    """The migrated template for the current migrations, created if missing (under an advisory lock)."""
    import psycopg

    name = template_name()
    admin = admin_url()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return name
            building = f"{name}_building_{os.getpid()}"
            conn.execute(f'DROP DATABASE IF EXISTS "{building}"')
            conn.execute(f'CREATE DATABASE "{building}"')
            print(f"bench: migrating the template database {name} once (about half a minute)", flush=True)
            env = {k: v for k, v in os.environ.items() if k not in ("QUANZI_TESTING", "REDIS_URL")}
            env.update(bench_environment())
            env["DATABASE_URL"] = base_url()._replace(path=f"/{building}").geturl()
            try:
                subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT,
                               env=env, check=True)
            except BaseException:
                conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
                raise
            conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
            return name
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


class ScratchDatabase:
    """`with ScratchDatabase("chat") as url:` — a migrated database of its own, dropped on the way out
    (also when the bench fails or is interrupted)."""

    def __init__(self, label: str) -> None:
        self.name = f"quanzi_bench_{label}_{os.getpid()}"
        self.url = base_url()._replace(path=f"/{self.name}").geturl()

    def __enter__(self) -> str:
        template = ensure_template()
        admin_sql(admin_url(), f'CREATE DATABASE "{self.name}" TEMPLATE "{template}"')
        return self.url

    def __exit__(self, *exc) -> None:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - Django never loaded here: nothing to close, still drop
            pass
        admin_sql(admin_url(), f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def use_scratch_database(url: str) -> None:
    """This process's Django runs on the scratch database with DEBUG off, as production, and no Redis
    (in-memory channel layer and cache, tasks in memory) unless the bench sets REDIS_URL itself."""
    os.environ.update({"DATABASE_URL": url, **bench_environment()})
    # Each of a bench's threads holds its connection for its whole run: with production's pool of 12 per
    # process, thread 13 waited out the pool's timeout (10 s) and failed.
    os.environ.setdefault("DATABASE_POOL_MAX_SIZE", "64")
    os.environ.pop("QUANZI_TESTING", None)
    os.environ.pop("REDIS_URL", None)


if __name__ == "__main__":
    if sys.argv[1:] == ["--drop-templates"]:
        for (name,) in admin_sql(admin_url(), "SELECT datname FROM pg_database WHERE datname LIKE "
                                              f"'{TEMPLATE_PREFIX}%'"):
            admin_sql(admin_url(), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            print("dropped", name)
    else:
        print(ensure_template())
