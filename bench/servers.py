"""Servers for the socket and HTTP benches (chat, moments, reconnect): a scratch environment (scratch
PostgreSQL database, unique Redis key prefix), Daphne or uvicorn processes on free loopback ports, and a way to
run Django code in a child process on that environment. Nothing here measures anything."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.scratch import ScratchDatabase, bench_environment  # noqa: E402

# The rate limits a real client lives under would throttle a load generator; lifted for the bench.
UNLIMITED = {"QUANZI_CHAT_SEND_LIMIT": "100000000", "QUANZI_CHAT_TYPING_LIMIT": "100000000",
             "QUANZI_CHAT_SOCKET_FRAME_BUDGET": "100000000",
             # Tokens are issued when the data is set up; on a busy machine that plus connecting 5,000 sockets
             # outlasted the 10-minute access token (TOKEN_EXPIRED), which a real app would have refreshed.
             "ACCESS_TOKEN_SECONDS": "7200"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_url() -> str:
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/4"
    parsed = urllib.parse.urlparse(url)
    if parsed.hostname not in ("127.0.0.1", "localhost") or parsed.path in ("", "/", "/0", "/1"):
        raise SystemExit("bench: REDIS_URL must be a loopback Redis database other than 0 and 1")
    return url


@contextlib.contextmanager
def scratch_environment(label: str) -> Iterator[dict]:
    """The environment for a bench's server processes: a scratch PostgreSQL database (cloned from the migrated
    template, dropped at the end), Redis under a key prefix of its own (deleted at the end), DEBUG off."""
    tag = f"bench{label}{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST") and k != "QUANZI_TESTING"}
    url = redis_url()
    with ScratchDatabase(label) as database_url:
        env.update({"DATABASE_URL": database_url, "REDIS_URL": url, "CHANNELS_PREFIX": tag, "CACHE_PREFIX": tag,
                    **UNLIMITED, **bench_environment()})
        env.pop("SQLITE_PATH", None)
        try:
            yield env
        finally:
            delete_redis_keys(url, tag)


def delete_redis_keys(url: str, tag: str) -> None:
    """Every key a bench wrote under its prefix `tag` (channel layer, cache, rate limits)."""
    import redis

    client = redis.Redis.from_url(url)
    for pattern in (f"{tag}*", f":1:{tag}*", f"{tag}:*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start:start + 1000])


# Data set-up writes commit without waiting for the WAL flush: nothing there is measured, and a crash could only
# lose a scratch database. Only set-up processes get it, never a server a bench measures.
SETUP_PGOPTIONS = "-c synchronous_commit=off"

_WORKER = r"""
import contextlib, io, json, sys, traceback
import django
django.setup()
out = sys.stdout
for line in sys.stdin:
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            exec(json.loads(line), {"__name__": "__bench__"})
        answer = {"ok": json.loads(printed.getvalue().strip().splitlines()[-1])}
    except BaseException:
        answer = {"error": printed.getvalue()[-2000:] + traceback.format_exc()}
    out.write("\x1eanswer " + json.dumps(answer) + "\n")
    out.flush()
"""


class DjangoWorker:
    """A child process on `env` with Django set up once, running code it is sent (its last printed line is JSON,
    the answer): a bench's data set-up, and later the writes it makes between measured phases, without paying
    Django's start-up (seconds) each time. Starting it early lets Django load while the bench does other things."""

    def __init__(self, env: dict) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", _WORKER], cwd=ROOT,
                                        env={**env, "PGOPTIONS": SETUP_PGOPTIONS},
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, code: str) -> dict:
        self.process.stdin.write(json.dumps(code) + "\n")
        self.process.stdin.flush()
        while True:  # anything else it printed (start-up warnings) passes through
            line = self.process.stdout.readline()
            if not line:
                raise SystemExit("bench: the Django worker exited (see its output above)")
            if line.startswith("\x1eanswer "):
                break
            print(line, end="")
        answer = json.loads(line.removeprefix("\x1eanswer "))
        if "error" in answer:
            raise SystemExit(f"bench: preparing data failed:\n{answer['error'][-3000:]}")
        return answer["ok"]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> DjangoWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_django(env: dict, code: str) -> dict:
    """Run `code` (after django.setup()) once in a child process on `env`; its last stdout line is JSON."""
    with DjangoWorker(env) as worker:
        return worker.run(code)


def uvicorn_available() -> bool:
    try:
        import uvicorn  # noqa: F401
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def launch_server(env: dict, app: str, log: Path, *, server: str = "daphne") -> tuple[subprocess.Popen, int]:
    """Start `app` on a free loopback port under Daphne (the production server) or uvicorn with uvloop, without
    waiting for it (`wait_listening`): a bench prepares its data meanwhile."""
    port = free_port()
    if server == "daphne":
        command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app]
    else:
        command = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop",
                   "--ws", "websockets", "--lifespan", "off", "--log-level", "warning", "--no-access-log", app]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    return process, port


def wait_listening(process: subprocess.Popen, port: int, log: Path) -> None:
    """Wait until a launched server accepts connections."""
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"{' '.join(process.args[2:3])} exited:\n{log.read_text()}") from None
            time.sleep(0.05)
    process.kill()
    raise SystemExit(f"{process.args} did not start")


def start_server(env: dict, app: str, log: Path, *, server: str = "daphne") -> tuple[subprocess.Popen, int]:
    """Start `app` (as `launch_server`) and wait until it accepts connections."""
    process, port = launch_server(env, app, log, server=server)
    wait_listening(process, port, log)
    return process, port


def start_daphne(env: dict, app: str, log: Path) -> tuple[subprocess.Popen, int]:
    return start_server(env, app, log, server="daphne")


def stop_processes(processes: list[subprocess.Popen]) -> None:
    """Stop servers. Quick mode kills them outright: their figures are taken, and a graceful stop after a run
    (Daphne working through hundreds of disconnects) cost seconds; the scratch database and the Redis prefix
    are removed afterwards either way."""
    from bench.report import quick

    for process in processes:
        if quick():
            process.kill()
        else:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_quiet(pid: int, *, quiet: float = 0.2, at_most: float = 3.0) -> float:
    """Wait until a server has used no CPU for `quiet` seconds (it has processed what it was sent), at most
    `at_most` seconds; returns the seconds waited. Quick mode settles this way instead of a fixed pause."""
    began = time.perf_counter()
    last, still_since = cpu_seconds(pid), began
    while time.perf_counter() - began < at_most:
        time.sleep(0.05)
        now = cpu_seconds(pid)
        if now != last:
            last, still_since = now, time.perf_counter()
        elif time.perf_counter() - still_since >= quiet:
            break
    return time.perf_counter() - began


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list (nan when empty)."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's soft open-files limit towards `wanted` (up to the hard limit); returns it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft
