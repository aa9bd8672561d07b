"""Chat throughput and latency on one Daphne + Redis + PostgreSQL, against a bare Channels echo consumer as
the ceiling (and, when uvicorn + uvloop are installed, the same two apps on uvicorn side by side).

    .venv/bin/python bench/chat.py            (from the repository root; about two minutes, BENCH_QUICK=1: ~20 s)

Starts its own server processes on free loopback ports on a scratch PostgreSQL database (bench/scratch.py:
cloned from the migrated template, dropped at the end) and a unique Redis key prefix (REDIS_URL, default
redis://127.0.0.1:6379/4), and removes all of it at the end. Prints a table and figures (bench/report.py);
asserts nothing about them.

Scenarios: 1:1 pairs (`direct`) and one 200-member group (`group200`).
- Closed loop (the maximum): each sender sends, waits for its ack, sends again, for BENCH_SECONDS.
- Open loop (latency): the same senders at a fixed offered rate, half the closed-loop maximum of the same run,
  on a schedule that does not wait for acks. Every message carries its scheduled send time (perf_counter,
  the machine's monotonic clock, the same for every process here); a receiver's latency is its arrival time
  minus that, so a server falling behind shows up as latency (no coordinated omission). p50 / p99 / p99.9.
The load comes from BENCH_CLIENT_PROCESSES (2) processes so the generator is not the ceiling; after the
senders stop, clients drain until nothing arrives for a moment (at most BENCH_DRAIN_SECONDS), and the table
says what fraction of the expected deliveries arrived.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import figure, quick  # noqa: E402
from bench.servers import (  # noqa: E402
    percentile,
    run_django,
    scratch_environment,
    start_server,
    stop_processes,
    uvicorn_available,
)

QUICK = quick()
PAIRS = int(os.environ.get("BENCH_PAIRS", "10" if QUICK else "50"))
GROUP_SIZE = int(os.environ.get("BENCH_GROUP_SIZE", "200"))
GROUP_SENDERS = int(os.environ.get("BENCH_GROUP_SENDERS", "4"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "1" if QUICK else "4"))
OPEN_SECONDS = float(os.environ.get("BENCH_OPEN_SECONDS", "1.5" if QUICK else "8"))
CLIENT_PROCESSES = int(os.environ.get("BENCH_CLIENT_PROCESSES", "2"))
DRAIN_SECONDS = float(os.environ.get("BENCH_DRAIN_SECONDS", "10"))  # at most, after the last send
DRAIN_IDLE_SECONDS = 1.0 if QUICK else 1.5  # stop draining once nothing arrived for this long
SETTLE_SECONDS = 0.3 if QUICK else 1.0  # after connecting, let connect-time chatter (presence) settle
UVICORN = os.environ.get("BENCH_UVICORN", "0" if QUICK else "1") == "1" and uvicorn_available()


def prepare_data(env: dict) -> dict:
    """Users, tokens and conversations in the scratch database (in a child process so this process's Django
    settings stay untouched). Friendships are written in bulk: only friends may open chats (core.reach)."""
    return run_django(env, f"""
import json
from backend.accounts.models import User
from backend.accounts.services import DeviceInfo, _start_session
from backend.chat import services
from backend.circles.models import Friendship
from backend.core.ids import encode_id
def user(i):
    u = User.objects.create_user(f"+86137{{i:08d}}", display_name=f"b{{i}}")
    return u, _start_session(u, DeviceInfo()).access_token
def befriend(pairs):
    Friendship.objects.bulk_create([Friendship(user=a, friend=b) for x, y in pairs for a, b in ((x, y), (y, x))])
people = [(user(2 * p), user(2 * p + 1)) for p in range({PAIRS})]
befriend([(a, b) for (a, _), (b, _) in people])
pairs = []
for (a, ta), (b, tb) in people:
    c = services.open_direct_conversation(user=a, other_user_id=b.pk)
    pairs.append({{"conversation": encode_id("Conversation", c.pk), "tokens": [ta, tb], "ids": [a.pk, b.pk]}})
members = [user(10000 + i) for i in range({GROUP_SIZE})]
befriend([(members[0][0], u) for u, _ in members[1:]])
g = services.create_group(owner=members[0][0], title="bench", member_ids=[u.pk for u, _ in members[1:]])
print(json.dumps({{"pairs": pairs, "group": {{"conversation": encode_id("Conversation", g.pk),
      "tokens": [t for _, t in members], "ids": [u.pk for u, _ in members]}}}}))
""")


def _client_process(url: str, sockets: list[dict], senders: list[tuple[int, dict]], seconds: float,
                    rate_per_sender: float | None, barrier, results) -> None:
    """One load-generator process: opens its share of the sockets, waits for the others, sends for
    `seconds` (closed loop when `rate_per_sender` is None, else open loop at that rate), then drains."""
    results.put(asyncio.run(_client_load(url, sockets, senders, seconds, rate_per_sender, barrier)))


async def _client_load(url: str, sockets: list[dict], senders: list[tuple[int, dict]], seconds: float,
                       rate_per_sender: float | None, barrier) -> dict:
    import websockets

    latencies: list[float] = []
    acks = errors = 0
    last_frame = time.perf_counter()
    ack_waiters: dict[int, asyncio.Queue] = {i: asyncio.Queue() for i, _ in senders}

    async def open_one(auth: dict):
        ws = await websockets.connect(url, max_queue=None, open_timeout=60, ping_interval=None)
        await ws.send(json.dumps(auth))
        while json.loads(await ws.recv())["type"] != "auth.ok":
            pass
        return ws

    async def reader(i: int, ws) -> None:
        nonlocal acks, errors, last_frame
        async for raw in ws:
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind == "ack":
                acks += 1
                if rate_per_sender is None:
                    await ack_waiters[i].put(frame)
            elif kind == "error":
                errors += 1
                if rate_per_sender is None and i in ack_waiters:
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
    await asyncio.sleep(SETTLE_SECONDS)
    readers = [asyncio.create_task(reader(i, ws)) for i, ws in enumerate(conns)]
    began = time.perf_counter()
    stop = began + seconds

    async def closed_sender(index: int, template: dict) -> None:
        k = 0
        while time.perf_counter() < stop:
            cid = f"p{os.getpid()}-{index}-{k}"
            k += 1
            await conns[index].send(json.dumps({**template, "client_msg_id": cid,
                                                "text": f"bench {cid} {time.perf_counter():.6f}"}))
            answer = await asyncio.wait_for(ack_waiters[index].get(), 60)
            if answer.get("type") != "ack":
                raise RuntimeError(answer)

    async def open_sender(index: int, template: dict) -> None:
        interval = 1.0 / rate_per_sender
        due = began + random.random() * interval  # senders spread over the first interval
        k = 0
        while due < stop:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            cid = f"p{os.getpid()}-{index}-{k}"
            k += 1
            # The scheduled time, not the time the send got round: lateness here is latency too.
            await conns[index].send(json.dumps({**template, "client_msg_id": cid, "text": f"bench {cid} {due:.6f}"}))
            due += interval

    sender = closed_sender if rate_per_sender is None else open_sender
    await asyncio.gather(*(sender(i, t) for i, t in senders))
    await asyncio.sleep(max(0.0, stop - time.perf_counter()))  # a process without senders still listens
    sent_until = time.perf_counter()
    last_frame = max(last_frame, sent_until)
    while time.perf_counter() - sent_until < DRAIN_SECONDS and time.perf_counter() - last_frame < DRAIN_IDLE_SECONDS:
        await asyncio.sleep(0.05)
    for task in readers:
        task.cancel()
    await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
    return {"acks": acks, "errors": errors, "latencies": latencies, "began": began, "sent_until": sent_until,
            "last_delivery": max(began, last_frame) if latencies else began}


def run_load(url: str, sockets: list[dict], senders: list[tuple[int, dict]], seconds: float,
             expected_receivers: int, offered_per_s: float | None = None) -> dict:
    """sockets: the auth frame per socket; senders: (socket index, send frame template). The sockets are split
    over CLIENT_PROCESSES load-generator processes, each sender going with its socket. `offered_per_s`: open
    loop at that total rate (shared by the senders), else closed loop."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    parts = max(1, min(CLIENT_PROCESSES, len(sockets)))
    bounds = [len(sockets) * k // parts for k in range(parts + 1)]
    barrier, results = ctx.Barrier(parts), ctx.Queue()
    rate_per_sender = offered_per_s / len(senders) if offered_per_s else None
    processes = []
    for k in range(parts):
        lo, hi = bounds[k], bounds[k + 1]
        my_senders = [(i - lo, t) for i, t in senders if lo <= i < hi]
        process = ctx.Process(target=_client_process, args=(url, sockets[lo:hi], my_senders, seconds,
                                                            rate_per_sender, barrier, results))
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
        "offered_per_s": offered_per_s,
        "accepted_per_s": acks / send_time,
        "deliveries_per_s": len(lat) / delivery_time if delivery_time > 0 else float("nan"),
        "p50_ms": 1000 * statistics.median(lat) if lat else float("nan"),
        "p99_ms": 1000 * percentile(lat, 0.99),
        "p999_ms": 1000 * percentile(lat, 0.999),
        "errors": sum(r["errors"] for r in out),
        "delivered": f"{len(lat)}/{expected}",
        "delivered_pct": 100 * len(lat) / expected if expected else float("nan"),
    }


def main() -> None:
    t0 = time.time()
    processes = []
    logs = Path(tempfile.mkdtemp(prefix="quanzi-bench-logs-"))
    try:
        with scratch_environment("chat") as env:
            data = prepare_data(env)
            echo_env = {**env, "PYTHONPATH": str(ROOT / "bench")}
            servers = {"daphne": {}, "uvicorn": {}}
            for server in ("daphne", "uvicorn") if UVICORN else ("daphne",):
                for app, app_env, name in (("backend.asgi:application", env, "chat"),
                                           ("echo_asgi:application", echo_env, "echo")):
                    process, port = start_server(app_env, app, logs / f"{server}-{name}.log", server=server)
                    processes.append(process)
                    servers[server][name] = f"ws://127.0.0.1:{port}/ws/"
            try:
                run_scenarios(data, servers, logs)
            finally:
                stop_processes(processes)
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    print(f"total bench time {time.time() - t0:.0f} s")


def run_scenarios(data: dict, servers: dict, logs: Path) -> None:
    # 1:1 — every pair: A sends to B (B also hears nothing else). Chat rings both members' sockets; the echo
    # consumer rings B's only, so chat delivers twice per message: compare accepted/s, and deliveries/s loosely.
    pair_sockets, pair_senders, echo_sockets, echo_senders = [], [], [], []
    for p, pair in enumerate(data["pairs"]):
        for who in (0, 1):
            pair_sockets.append({"type": "auth", "token": pair["tokens"][who]})
            echo_sockets.append({"type": "auth", "groups": [f"u{pair['ids'][who]}"]})
        pair_senders.append((2 * p, {"type": "send", "conversation_id": pair["conversation"]}))
        echo_senders.append((2 * p, {"type": "send", "group": f"u{pair['ids'][1]}"}))
    group = data["group"]
    g_sockets = [{"type": "auth", "token": t} for t in group["tokens"]]
    g_senders = [(i, {"type": "send", "conversation_id": group["conversation"]}) for i in range(GROUP_SENDERS)]
    e_sockets = [{"type": "auth", "groups": ["g"]} for _ in group["tokens"]]
    e_senders = [(i, {"type": "send", "group": "g"}) for i in range(GROUP_SENDERS)]
    g = len(g_sockets)
    direct_label = f"1:1, {len(pair_sockets)} sockets, {len(pair_senders)} senders"
    group_label = f"group of {g}, {GROUP_SENDERS} senders"

    daphne, uvicorn = servers["daphne"], servers["uvicorn"]
    rows = []  # (label, server, mode, result)

    def run(label: str, server: str, url: str, sockets, senders, receivers: int, offered=None) -> dict:
        began = time.perf_counter()
        result = run_load(url, sockets, senders, OPEN_SECONDS if offered else SECONDS, receivers, offered)
        result["took_s"] = time.perf_counter() - began  # connecting, settling, sending, draining
        rows.append((label, server, "open" if offered else "closed", result))
        return result

    direct = run(direct_label, "chat", daphne["chat"], pair_sockets, pair_senders, 2)
    direct_echo = run(direct_label, "echo", daphne["echo"], echo_sockets, echo_senders, 1)
    grp = run(group_label, "chat", daphne["chat"], g_sockets, g_senders, g)
    grp_echo = run(group_label, "echo", daphne["echo"], e_sockets, e_senders, g)
    direct_uv = direct_echo_uv = None
    if uvicorn:
        direct_uv = run(direct_label, "chat/uv", uvicorn["chat"], pair_sockets, pair_senders, 2)
        direct_echo_uv = run(direct_label, "echo/uv", uvicorn["echo"], echo_sockets, echo_senders, 1)
    # Open loop at half of this run's closed-loop maximum.
    direct_open = run(direct_label, "chat", daphne["chat"], pair_sockets, pair_senders, 2,
                      offered=direct["accepted_per_s"] / 2)
    group_open = run(group_label, "chat", daphne["chat"], g_sockets, g_senders, g,
                     offered=grp["accepted_per_s"] / 2)

    print(f"\nbench/chat.py — one Daphne + Redis + PostgreSQL, {SECONDS:g} s per closed-loop run, {OPEN_SECONDS:g} s "
          f"per open-loop run, {CLIENT_PROCESSES} client processes{', quick' if QUICK else ''}")
    print(f"{'scenario':34} {'server':7} {'mode':6} {'offered/s':>9} {'accepted/s':>10} {'deliveries/s':>12} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>8} {'delivered':>14} {'%':>6} {'took s':>6}")
    for label, server, mode, r in rows:
        offered = f"{r['offered_per_s']:9.1f}" if r["offered_per_s"] else f"{'max':>9}"
        print(f"{label:34} {server:7} {mode:6} {offered} {r['accepted_per_s']:10.1f} {r['deliveries_per_s']:12.1f} "
              f"{r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {r['p999_ms']:8.1f} {r['delivered']:>14} "
              f"{r['delivered_pct']:5.1f}% {r['took_s']:6.1f}")

    def ratio(a: float, b: float) -> float | None:
        return round(a / b, 3) if b else None

    print()
    figure("chat.direct.accepted_per_s", round(direct["accepted_per_s"], 1), "msg/s")
    figure("chat.direct.deliveries_per_s", round(direct["deliveries_per_s"], 1), "deliveries/s")
    figure("chat.direct.delivered_pct", round(direct["delivered_pct"], 2), "%", "= 100 (no backlog left)")
    figure("chat.echo.direct.accepted_per_s", round(direct_echo["accepted_per_s"], 1), "msg/s")
    figure("chat.echo.direct.deliveries_per_s", round(direct_echo["deliveries_per_s"], 1), "deliveries/s")
    figure("chat.direct.ratio_accepted_vs_echo", ratio(direct["accepted_per_s"], direct_echo["accepted_per_s"]),
           "ratio", ">= 0.5")
    figure("chat.group200.accepted_per_s", round(grp["accepted_per_s"], 1), "msg/s")
    figure("chat.group200.deliveries_per_s", round(grp["deliveries_per_s"], 1), "deliveries/s")
    figure("chat.group200.delivered_pct", round(grp["delivered_pct"], 2), "%", "= 100 (no backlog left)")
    figure("chat.echo.group200.deliveries_per_s", round(grp_echo["deliveries_per_s"], 1), "deliveries/s")
    figure("chat.group200.ratio_deliveries_vs_echo", ratio(grp["deliveries_per_s"], grp_echo["deliveries_per_s"]),
           "ratio", ">= 0.8")
    for name, r in (("direct", direct_open), ("group200", group_open)):
        figure(f"chat.{name}.open.offered_per_s", round(r["offered_per_s"], 1), "msg/s", "half the closed-loop max")
        figure(f"chat.{name}.open.p50_ms", round(r["p50_ms"], 1), "ms", "<= 20 ms")
        figure(f"chat.{name}.open.p99_ms", round(r["p99_ms"], 1), "ms", "<= 150 ms")
        figure(f"chat.{name}.open.p999_ms", round(r["p999_ms"], 1), "ms")
        figure(f"chat.{name}.open.delivered_pct", round(r["delivered_pct"], 2), "%", "= 100")
    if direct_uv and direct_echo_uv:
        figure("chat.direct.uvicorn.accepted_per_s", round(direct_uv["accepted_per_s"], 1), "msg/s")
        figure("chat.direct.uvicorn.deliveries_per_s", round(direct_uv["deliveries_per_s"], 1), "deliveries/s")
        figure("chat.echo.direct.uvicorn.accepted_per_s", round(direct_echo_uv["accepted_per_s"], 1), "msg/s")
        figure("chat.direct.ratio_uvicorn_vs_daphne", ratio(direct_uv["accepted_per_s"], direct["accepted_per_s"]),
               "ratio")
        figure("chat.echo.direct.ratio_uvicorn_vs_daphne",
               ratio(direct_echo_uv["accepted_per_s"], direct_echo["accepted_per_s"]), "ratio")

    log = (logs / "daphne-chat.log").read_text()
    print(f"\nchannel-layer 'over capacity' drops logged by the chat node: {log.count('over capacity')} "
          f"(recovered from the database by seq)")
    problems = [line for line in log.splitlines() if " ERROR " in line or " WARNING " in line]
    print(f"warnings/errors logged by the chat node: {len(problems)}" + "".join(f"\n  {p[:200]}" for p in problems[:5]))
    refused = sum(r["errors"] for *_, r in rows)
    if refused:
        print(f"error frames received by the clients: {refused}")


if __name__ == "__main__":
    main()
