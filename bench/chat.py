"""Chat throughput and latency on one Daphne + Redis, against a bare Channels echo consumer as the ceiling.

    .venv/bin/python bench/chat.py            (from the repository root; about a minute)

Starts its own Daphne processes on free loopback ports with a scratch database (a new PostgreSQL database
when DATABASE_URL points at PostgreSQL, else a temporary SQLite file) and a unique Redis key prefix
(REDIS_URL, default redis://127.0.0.1:6379/4), and removes all of it at the end. Prints figures; asserts
nothing about them. Scenarios: 1:1 pairs and one 200-member group, each with closed-loop senders (send,
wait for the ack, send again) for a fixed time. The load comes from BENCH_CLIENT_PROCESSES (2) processes so
the generator is not the ceiling; after the senders stop, clients drain until nothing arrives for 1.5 s
(at most BENCH_DRAIN_SECONDS), and the table says what fraction of the expected deliveries arrived.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.core.standins import STAGING_OPT_INS, throwaway_secrets  # noqa: E402

PAIRS = int(os.environ.get("BENCH_PAIRS", "50"))
GROUP_SIZE = int(os.environ.get("BENCH_GROUP_SIZE", "200"))
GROUP_SENDERS = int(os.environ.get("BENCH_GROUP_SENDERS", "4"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scratch_environment() -> tuple[dict, callable]:
    """Environment for the bench processes, and a cleanup function."""
    tag = f"bench{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/4"
    parsed = urllib.parse.urlparse(redis_url)
    if parsed.hostname not in ("127.0.0.1", "localhost") or parsed.path in ("", "/", "/0", "/1"):
        raise SystemExit("bench: REDIS_URL must be a loopback Redis database other than 0 and 1")
    env.update({
        "REDIS_URL": redis_url,
        "CHANNELS_PREFIX": tag, "CACHE_PREFIX": tag, "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "backend.settings", "LOG_LEVEL": "WARNING",
        "QUANZI_CHAT_SEND_LIMIT": "100000000", "QUANZI_CHAT_TYPING_LIMIT": "100000000",
        "QUANZI_CHAT_SOCKET_FRAME_BUDGET": "100000000",
        **STAGING_OPT_INS, **throwaway_secrets(),  # DEBUG off, as production (QUANZI_TESTING is refused there)
    })
    env.pop("QUANZI_TESTING", None)
    tmp = Path(tempfile.mkdtemp(prefix="quanzi-bench-"))
    database_url = os.environ.get("DATABASE_URL", "")
    pg = urllib.parse.urlparse(database_url) if database_url.startswith("postgres") else None
    if pg is not None:
        if pg.hostname not in ("127.0.0.1", "localhost"):
            raise SystemExit("bench: DATABASE_URL must point at loopback")
        env["DATABASE_URL"] = pg._replace(path=f"/{tag}").geturl()
        admin = pg._replace(path="/postgres").geturl()
        _psql(admin, f'CREATE DATABASE "{tag}"')
    else:
        env.pop("DATABASE_URL", None)
        env["SQLITE_PATH"] = str(tmp / "bench.sqlite3")

    def cleanup() -> None:
        if pg is not None:
            _psql(pg._replace(path="/postgres").geturl(), f'DROP DATABASE IF EXISTS "{tag}" WITH (FORCE)')
        import redis

        client = redis.Redis.from_url(redis_url)
        for pattern in (f"{tag}*", f":1:{tag}*", f"{tag}:*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
        shutil.rmtree(tmp, ignore_errors=True)

    return env, cleanup


def _psql(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


def start_daphne(env: dict, app: str, log: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), app],
        cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, port
        except OSError:
            if process.poll() is not None:
                raise SystemExit(f"daphne {app} exited:\n{log.read_text()}") from None
            time.sleep(0.1)
    raise SystemExit(f"daphne {app} did not start")


def stop_processes(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def prepare_data(env: dict) -> dict:
    """Migrate the scratch database and create users, tokens and conversations (in a child process so this
    process's Django settings stay untouched)."""
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    code = f"""
import json, django
django.setup()
from django.conf import settings
settings.QUANZI_CIRCLES = {{"FRIEND_REQUESTS_PER_HOUR": 10**9}}  # the group's owner befriends 199 people
from backend.accounts.models import User
from backend.accounts.services import DeviceInfo, _start_session
from backend.chat import services
from backend.circles import services as circles
from backend.core.ids import encode_id
def befriend(a, b):  # only friends (or circle co-members) may open chats
    circles.accept_friend_request(user=b, request_id=circles.send_friend_request(user=a, to_user_id=b.pk).pk)
def user(i):
    u = User.objects.create_user(f"+86137{{i:08d}}", display_name=f"b{{i}}")
    return u, _start_session(u, DeviceInfo()).access_token
pairs = []
for p in range({PAIRS}):
    (a, ta), (b, tb) = user(2 * p), user(2 * p + 1)
    befriend(a, b)
    c = services.open_direct_conversation(user=a, other_user_id=b.pk)
    pairs.append({{"conversation": encode_id("Conversation", c.pk), "tokens": [ta, tb], "ids": [a.pk, b.pk]}})
members = [user(10000 + i) for i in range({GROUP_SIZE})]
for u, _ in members[1:]:
    befriend(members[0][0], u)
g = services.create_group(owner=members[0][0], title="bench", member_ids=[u.pk for u, _ in members[1:]])
print(json.dumps({{"pairs": pairs, "group": {{"conversation": encode_id("Conversation", g.pk),
      "tokens": [t for _, t in members], "ids": [u.pk for u, _ in members]}}}}))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


CLIENT_PROCESSES = int(os.environ.get("BENCH_CLIENT_PROCESSES", "2"))
DRAIN_SECONDS = float(os.environ.get("BENCH_DRAIN_SECONDS", "10"))  # at most, after the last send
DRAIN_IDLE_SECONDS = 1.5  # stop draining once nothing arrived for this long


def _client_process(url: str, sockets: list[dict], senders: list[tuple[int, dict]], seconds: float,
                    barrier, results) -> None:
    """One load-generator process: opens its share of the sockets, waits for the others, sends closed-loop
    for `seconds`, then drains. Latency is measured from the send time carried in the message text
    (perf_counter is the system-wide monotonic clock, comparable across processes)."""
    results.put(asyncio.run(_client_load(url, sockets, senders, seconds, barrier)))


async def _client_load(url: str, sockets: list[dict], senders: list[tuple[int, dict]], seconds: float,
                       barrier) -> dict:
    import websockets

    latencies: list[float] = []
    acks = 0
    last_frame = time.perf_counter()
    ack_waiters: dict[int, asyncio.Queue] = {i: asyncio.Queue() for i, _ in senders}

    async def open_one(auth: dict):
        ws = await websockets.connect(url, max_queue=None, open_timeout=60, ping_interval=None)
        await ws.send(json.dumps(auth))
        while json.loads(await ws.recv())["type"] != "auth.ok":
            pass
        return ws

    async def reader(i: int, ws) -> None:
        nonlocal acks, last_frame
        async for raw in ws:
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind == "ack":
                acks += 1
                await ack_waiters[i].put(frame)
            elif kind == "message":
                body = frame["message"].get("body") or ""
                if body.startswith("bench "):
                    now = time.perf_counter()
                    last_frame = now
                    latencies.append(now - float(body.split()[2]))

    conns = []
    for start in range(0, len(sockets), 50):
        conns.extend(await asyncio.gather(*(open_one(a) for a in sockets[start:start + 50])))
    await asyncio.get_running_loop().run_in_executor(None, barrier.wait, 120)  # everyone connected
    await asyncio.sleep(1.0)  # let connect-time chatter (presence) settle
    readers = [asyncio.create_task(reader(i, ws)) for i, ws in enumerate(conns)]
    began = time.perf_counter()
    stop = began + seconds

    async def sender(index: int, template: dict) -> None:
        k = 0
        while time.perf_counter() < stop:
            cid = f"p{os.getpid()}-{index}-{k}"
            k += 1
            await conns[index].send(json.dumps({**template, "client_msg_id": cid,
                                                "text": f"bench {cid} {time.perf_counter():.6f}"}))
            ack = await asyncio.wait_for(ack_waiters[index].get(), 60)
            if ack.get("type") != "ack":
                raise RuntimeError(ack)

    await asyncio.gather(*(sender(i, t) for i, t in senders))
    await asyncio.sleep(max(0.0, stop - time.perf_counter()))  # a process without senders still listens
    sent_until = time.perf_counter()
    last_frame = max(last_frame, sent_until)
    while time.perf_counter() - sent_until < DRAIN_SECONDS and time.perf_counter() - last_frame < DRAIN_IDLE_SECONDS:
        await asyncio.sleep(0.1)
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    return {"acks": acks, "latencies": latencies, "began": began, "sent_until": sent_until,
            "last_delivery": max(began, last_frame) if latencies else began}


def run_load(url: str, sockets: list[tuple[str, dict]], senders: list[tuple[int, dict]], seconds: float,
             expected_receivers: int) -> dict:
    """sockets: (token, auth frame) per socket; senders: (socket index, send frame template). The sockets are
    split over CLIENT_PROCESSES load-generator processes, each sender going with its socket."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    parts = max(1, min(CLIENT_PROCESSES, len(sockets)))
    bounds = [len(sockets) * k // parts for k in range(parts + 1)]
    barrier, results = ctx.Barrier(parts), ctx.Queue()
    processes = []
    for k in range(parts):
        lo, hi = bounds[k], bounds[k + 1]
        mine = [auth for _, auth in sockets[lo:hi]]
        my_senders = [(i - lo, t) for i, t in senders if lo <= i < hi]
        process = ctx.Process(target=_client_process, args=(url, mine, my_senders, seconds, barrier, results))
        process.start()
        processes.append(process)
    out = [results.get(timeout=300) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    acks = sum(r["acks"] for r in out)
    lat = sorted(x for r in out for x in r["latencies"])
    began = min(r["began"] for r in out)
    send_time = max(r["sent_until"] for r in out) - began
    delivery_time = max(r["last_delivery"] for r in out) - began
    expected = acks * expected_receivers
    return {
        "accepted_per_s": acks / send_time,
        "deliveries_per_s": len(lat) / delivery_time if delivery_time > 0 else float("nan"),
        "p50_ms": 1000 * statistics.median(lat) if lat else float("nan"),
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan"),
        "delivered": f"{len(lat)}/{expected}",
        "delivered_pct": 100 * len(lat) / expected if expected else float("nan"),
    }


def main() -> None:
    t0 = time.time()
    env, cleanup = scratch_environment()
    processes = []
    logs = Path(tempfile.mkdtemp(prefix="quanzi-bench-logs-"))
    try:
        data = prepare_data(env)
        chat, chat_port = start_daphne(env, "backend.asgi:application", logs / "chat.log")
        processes.append(chat)
        echo_env = {**env, "PYTHONPATH": str(ROOT / "bench")}
        echo, echo_port = start_daphne(echo_env, "echo_asgi:application", logs / "echo.log")
        processes.append(echo)
        chat_url, echo_url = f"ws://127.0.0.1:{chat_port}/ws/", f"ws://127.0.0.1:{echo_port}/ws/"
        rows = []

        # 1:1 — every pair: A sends to B (B also hears nothing else). Chat rings both members' sockets.
        pair_sockets, pair_senders = [], []
        echo_sockets, echo_senders = [], []
        for p, pair in enumerate(data["pairs"]):
            for who in (0, 1):
                pair_sockets.append((pair["tokens"][who], {"type": "auth", "token": pair["tokens"][who]}))
                echo_sockets.append(("", {"type": "auth", "groups": [f"u{pair['ids'][who]}"]}))
            pair_senders.append((2 * p, {"type": "send", "conversation_id": pair["conversation"]}))
            echo_senders.append((2 * p, {"type": "send", "group": f"u{pair['ids'][1]}"}))
        n = len(pair_sockets)
        rows.append((f"1:1, {n} sockets, {len(pair_senders)} senders", "chat",
                     run_load(chat_url, pair_sockets, pair_senders, SECONDS, 2)))
        rows.append((f"1:1, {n} sockets, {len(pair_senders)} senders", "echo",
                     run_load(echo_url, echo_sockets, echo_senders, SECONDS, 1)))

        group = data["group"]
        g_sockets = [(t, {"type": "auth", "token": t}) for t in group["tokens"]]
        g_senders = [(i, {"type": "send", "conversation_id": group["conversation"]}) for i in range(GROUP_SENDERS)]
        e_sockets = [("", {"type": "auth", "groups": ["g"]}) for _ in group["tokens"]]
        e_senders = [(i, {"type": "send", "group": "g"}) for i in range(GROUP_SENDERS)]
        label = f"group of {len(g_sockets)}, {GROUP_SENDERS} senders"
        rows.append((label, "chat", run_load(chat_url, g_sockets, g_senders, SECONDS, len(g_sockets))))
        rows.append((label, "echo", run_load(echo_url, e_sockets, e_senders, SECONDS, len(e_sockets))))

        print(f"\nbench/chat.py — one Daphne + Redis, {SECONDS:.0f} s per run, {CLIENT_PROCESSES} client processes, "
              f"database: "
              f"{'PostgreSQL' if 'DATABASE_URL' in env else 'SQLite'}")
        print(f"{'scenario':38} {'server':6} {'accepted/s':>11} {'deliveries/s':>13} {'p50 ms':>8} {'p99 ms':>8}"
              f" {'delivered':>14} {'%':>6}")
        for label, server, r in rows:
            print(f"{label:38} {server:6} {r['accepted_per_s']:11.1f} {r['deliveries_per_s']:13.1f} "
                  f"{r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {r['delivered']:>14} {r['delivered_pct']:5.1f}%")
        def ratio(a: float, b: float) -> str:
            return f"{a / b:.2f}" if b else "n/a"

        for i in range(0, len(rows), 2):
            chat_r, echo_r = rows[i][2], rows[i + 1][2]
            print(f"ratio chat/echo, {rows[i][0]}: accepted {ratio(chat_r['accepted_per_s'], echo_r['accepted_per_s'])}, "
                  f"deliveries {ratio(chat_r['deliveries_per_s'], echo_r['deliveries_per_s'])}")
        over = (logs / "chat.log").read_text().count("over capacity")
        print(f"channel-layer 'over capacity' drops logged by the chat node: {over} "
              f"(recovered from the database by seq)")
        problems = [line for line in (logs / "chat.log").read_text().splitlines()
                    if " ERROR " in line or " WARNING " in line]
        print(f"warnings/errors logged by the chat node: {len(problems)}" + "".join(f"\n  {p[:200]}" for p in problems[:5]))
        print(f"total bench time {time.time() - t0:.0f} s")
    finally:
        stop_processes(processes)
        cleanup()
        shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    main()
