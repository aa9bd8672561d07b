"""Ledger transfers per second under concurrency on PostgreSQL: the Django services vs the same SQL by hand.

    .venv/bin/python bench/ledger.py          (from the repository root; about 25 s)

Creates a scratch PostgreSQL database next to DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/),
migrates it, runs both phases against the same wallets, and drops it at the end. No Redis: the channel layer
is in-memory and Celery eager, as in the embedded mode. Prints figures; asserts nothing about them.

Both phases do the same double-entry transfer in one transaction, between random pairs of a few wallets
(so threads contend on the same rows):
    lock both accounts FOR UPDATE in ascending id order → look up the idempotency key → check funds →
    insert the entry and its two legs → update both cached balances → insert the idempotency record →
    insert the two balance-change notification rows → commit (the deferred zero-sum trigger runs here).
The Django phase additionally does what the services do around that: input validation, and after commit the
socket doorbell (in-memory channel layer) and the push enqueue (Celery's in-memory broker; no worker runs,
push delivery is the notifications worker's cost, not the ledger's) of each notification. The ratio django/raw is what we track.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.core.standins import STAGING_OPT_INS, throwaway_secrets  # noqa: E402

THREADS = int(os.environ.get("BENCH_THREADS", "16"))
WALLETS = int(os.environ.get("BENCH_WALLETS", "8"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))


def scratch_database() -> tuple[str, str, str]:
    """(admin url, scratch url, name). Refuses anything but loopback PostgreSQL."""
    base = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/"
    parsed = urllib.parse.urlparse(base)
    if not parsed.scheme.startswith("postgres"):
        raise SystemExit("bench/ledger.py needs PostgreSQL: set DATABASE_URL=postgresql://…")
    if parsed.hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit("bench: DATABASE_URL must point at loopback")
    name = f"quanzi_bench_ledger_{os.getpid()}"
    return parsed._replace(path="/postgres").geturl(), parsed._replace(path=f"/{name}").geturl(), name


def admin_sql(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def run_threads(target, seconds: float) -> tuple[int, int, float]:
    """Run `target(n, deadline, counts)` on THREADS threads; returns (transfers, errors, elapsed)."""
    counts = [[0, 0] for _ in range(THREADS)]
    started = time.perf_counter()
    deadline = started + seconds
    threads = [threading.Thread(target=target, args=(n, deadline, counts[n])) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return sum(c[0] for c in counts), sum(c[1] for c in counts), elapsed


def use_scratch_database(scratch_url: str) -> None:
    """This process's Django runs on the scratch database with DEBUG off, as production, with the explicit
    development stand-ins (QUANZI_TESTING is refused there) and no Redis (tasks in memory)."""
    os.environ.update({"DATABASE_URL": scratch_url, "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "backend.settings",
                       **STAGING_OPT_INS, **throwaway_secrets()})
    os.environ.pop("QUANZI_TESTING", None)
    os.environ.pop("REDIS_URL", None)


def main() -> None:
    admin_url, scratch_url, name = scratch_database()
    use_scratch_database(scratch_url)
    admin_sql(admin_url, f'CREATE DATABASE "{name}"')
    try:
        bench(scratch_url)
    finally:
        from django.db import connections

        connections.close_all()
        admin_sql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench(scratch_url: str) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from backend.celery import app as celery_app

    # As in production, a push is enqueued for the notifications worker, not delivered inline: tasks go to
    # Celery's in-process memory broker and no worker runs. (Without REDIS_URL settings make Celery eager.)
    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_url = "memory://localhost/"  # a host keeps kombu from warning

    call_command("migrate", verbosity=0)

    from backend.accounts.models import User
    from backend.wallet import services
    from backend.wallet.models import LedgerAccount
    from backend.wallet.selectors import reconcile

    users = [User.objects.create_user(f"+86137{n:08d}", display_name=f"Bench {n}") for n in range(WALLETS)]
    wallets = [services.ensure_wallet(user_id=u.pk) for u in users]
    bank = services.system_account(LedgerAccount.Kind.EXTERNAL_BANK)
    for wallet in wallets:
        for i in range(10):  # 10 × ¥1,000,000: nobody runs dry
            services.transfer(source_id=bank.pk, destination_id=wallet.pk, amount=100_000_000,
                              idempotency_key=f"bench:fund:{wallet.pk}:{i}", kind="top_up")
    ids = [w.pk for w in wallets]
    owner_of = {w.pk: w.owner_id for w in wallets}
    connection.close()
    print(f"ledger bench: PostgreSQL, {THREADS} threads, {WALLETS} wallets, {SECONDS:.0f} s per phase")

    # --- phase 1: the Django services -----------------------------------------------------------
    def django_worker(n: int, deadline: float, count: list[int]) -> None:
        from django.db import connection as conn

        rng = random.Random(n)
        i = 0
        try:
            while time.perf_counter() < deadline:
                src, dst = rng.sample(ids, 2)
                i += 1
                try:
                    services.transfer(source_id=src, destination_id=dst, amount=rng.randint(1, 100),
                                      idempotency_key=f"bench:dj:{n}:{i}")
                    count[0] += 1
                except Exception as exc:  # counted, reported, never hidden
                    count[1] += 1
                    if count[1] == 1:
                        print(f"  django thread {n}: {type(exc).__name__}: {exc}")
        finally:
            conn.close()

    done, errors, elapsed = run_threads(django_worker, SECONDS)
    django_rate = done / elapsed
    print(f"django services : {done:7d} transfers in {elapsed:5.1f} s = {django_rate:8.1f} transfers/s"
          f"  ({errors} errors)")

    # --- phase 2: the same transfer as hand-written SQL over psycopg -------------------------------
    import json

    import psycopg

    from backend.core.crypto import keyring
    from backend.notifications.models import Notification

    note_fields = [f for f in Notification._meta.concrete_fields if not f.primary_key]
    note_columns = ", ".join(f.column for f in note_fields)
    note_marks = ", ".join(["%s"] * len(note_fields))
    sealed_body = keyring().encrypt("收入 ¥0.50，来自 Bench。可用余额 ¥1,000,000.00。",
                                    context="notifications.notification.body")

    def note_values(recipient_id: int, entry_id: int) -> list:
        from backend.core import clock

        note = Notification(recipient_id=recipient_id, kind="money", event="wallet.balance_changed",
                            title="资金变动提醒", payload={"entry_id": f"JournalEntry:{entry_id}"},
                            created_at=clock.now())
        values = []
        for field in note_fields:
            if field.attname == "body":
                values.append(sealed_body)
            elif field.attname == "payload":
                values.append(json.dumps(note.payload))
            else:
                values.append(getattr(note, field.attname))
        return values

    def raw_worker(n: int, deadline: float, count: list[int]) -> None:
        rng = random.Random(1000 + n)
        i = 0
        with psycopg.connect(scratch_url) as conn:
            while time.perf_counter() < deadline:
                src, dst = rng.sample(ids, 2)
                amount = rng.randint(1, 100)
                i += 1
                key = f"bench:raw:{n}:{i}"
                try:
                    with conn.transaction(), conn.cursor() as cur:
                        cur.execute("SELECT id, balance, held FROM wallet_ledgeraccount WHERE id = ANY(%s) "
                                    "ORDER BY id FOR UPDATE", (sorted((src, dst)),))
                        rows = {r[0]: (r[1], r[2]) for r in cur.fetchall()}
                        cur.execute("SELECT 1 FROM wallet_idempotencyrecord WHERE scope = %s AND key = %s",
                                    (f"acct:{src}", key))
                        if cur.fetchone() is not None or rows[src][0] - rows[src][1] < amount:
                            raise RuntimeError("replay or insufficient funds: not expected in the bench")
                        now = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime())
                        cur.execute("INSERT INTO wallet_journalentry (kind, memo, created_at) "
                                    "VALUES ('transfer', '', %s) RETURNING id", (now,))
                        entry_id = cur.fetchone()[0]
                        src_after, dst_after = rows[src][0] - amount, rows[dst][0] + amount
                        cur.execute("INSERT INTO wallet_leg (entry_id, account_id, amount, balance_after) "
                                    "VALUES (%s, %s, %s, %s), (%s, %s, %s, %s)",
                                    (entry_id, src, -amount, src_after, entry_id, dst, amount, dst_after))
                        cur.execute("UPDATE wallet_ledgeraccount SET balance = %s WHERE id = %s", (src_after, src))
                        cur.execute("UPDATE wallet_ledgeraccount SET balance = %s WHERE id = %s", (dst_after, dst))
                        cur.execute("INSERT INTO wallet_idempotencyrecord (scope, key, operation, fingerprint, "
                                    "entry_id, created_at) VALUES (%s, %s, 'transfer', %s, %s, %s)",
                                    (f"acct:{src}", key, "0" * 64, entry_id, now))
                        for account in (src, dst):
                            cur.execute(f"INSERT INTO notifications_notification ({note_columns}) "
                                        f"VALUES ({note_marks})", note_values(owner_of[account], entry_id))
                    count[0] += 1
                except Exception as exc:
                    count[1] += 1
                    if count[1] == 1:
                        print(f"  raw thread {n}: {type(exc).__name__}: {exc}")

    done, errors, elapsed = run_threads(raw_worker, SECONDS)
    raw_rate = done / elapsed
    print(f"raw SQL psycopg : {done:7d} transfers in {elapsed:5.1f} s = {raw_rate:8.1f} transfers/s"
          f"  ({errors} errors)")
    print(f"ratio django/raw: {django_rate / raw_rate:.2f}" if raw_rate else "ratio: n/a")

    report = reconcile()
    print(f"reconcile after both phases: {'ok' if report.ok else report.problems[:5]} "
          f"({report.entries_checked} entries, ledger total {report.ledger_total})")
    connection.close()


if __name__ == "__main__":
    main()
