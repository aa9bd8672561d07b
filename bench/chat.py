"""Chat throughput and latency on one Daphne + Redis + PostgreSQL, against a bare Channels echo consumer as
the ceiling (and, when uvicorn + uvloop are installed, the same two apps on uvicorn side by side). For 1:1 a
second echo runs on the chat's own transport (bench/echo_fanout_asgi.py: the process's fan-out, no database),
so chat / that echo is what the send service itself costs.

    .venv/bin/python bench/chat.py            (from the repository root; about two minutes, BENCH_QUICK=1: ~25 s)

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
The load comes from BENCH_CLIENT_PROCESSES (2) processes so the generator is not the ceiling; they start, and
connect every scenario's sockets, once, while the data is written (the 1:1 sockets reconnect to uvicorn for its
runs). After the senders stop, clients drain until every expected delivery has arrived, or nothing arrived for
a moment (at most BENCH_DRAIN_SECONDS), and the table says what fraction of the expected deliveries arrived.
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
    DjangoWorker,
    cpu_seconds,
    launch_server,
    percentile,
    scratch_environment,
    stop_processes,
    uvicorn_available,
    wait_listening,
    wait_quiet,
)
from bench.turns import measuring  # noqa: E402

QUICK = quick()
PAIRS = int(os.environ.get("BENCH_PAIRS", "10" if QUICK else "50"))
GROUP_SIZE = int(os.environ.get("BENCH_GROUP_SIZE", "200"))
GROUP_SENDERS = int(os.environ.get("BENCH_GROUP_SENDERS", "4"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "1" if QUICK else "4"))
OPEN_SECONDS = float(os.environ.get("BENCH_OPEN_SECONDS", "1" if QUICK else "8"))
CLIENT_PROCESSES = int(os.environ.get("BENCH_CLIENT_PROCESSES", "2"))
DRAIN_SECONDS = float(os.environ.get("BENCH_DRAIN_SECONDS", "10"))  # at most, after the last send
# Draining stops once every expected delivery arrived, or when nothing arrived for this long.
DRAIN_IDLE_SECONDS = 1.0 if QUICK else 1.5
# Before each run: a fixed pause (full mode), or at most this long until the servers used no CPU for 0.1 s (quick).
SETTLE_SECONDS = 1.0
UVICORN = os.environ.get("BENCH_UVICORN", "0" if QUICK else "1") == "1" and uvicorn_available()


def prepare_data(worker: DjangoWorker) -> dict:
    """Users, tokens and conversations in the scratch database (in a child process so this process's Django
    settings stay untouched). Users, their devices and friendships are written in bulk (as bench/reconnect.py
    does; only friends may open chats: core.reach), the conversations through the chat service."""
    return worker.run(f"""
import json
from backend.accounts.models import Device, User, phone_index
from backend.accounts.tokens import issue_access_token
from backend.chat import services
from backend.circles.models import Friendship
from backend.core.ids import encode_id
def users(numbers):
    users = User.objects.bulk_create([User(phone=f"+86137{{i:08d}}", phone_index=phone_index(f"+86137{{i:08d}}"),
                                           display_name=f"b{{i}}", password="!") for i in numbers])
    devices = Device.objects.bulk_create([Device(user=u, name="bench") for u in users])
    return [(u, issue_access_token(user_id=u.pk, device_id=d.pk, generation=d.generation)[0])
            for u, d in zip(users, devices)]
def befriend(pairs):
    Friendship.objects.bulk_create([Friendship(user=a, friend=b) for x, y in pairs for a, b in ((x, y), (y, x))])
everyone = users(range(2 * {PAIRS}))
people = [(everyone[2 * p], everyone[2 * p + 1]) for p in range({PAIRS})]
befriend([(a, b) for (a, _), (b, _) in people])
pairs = []
for (a, ta), (b, tb) in people:
    c = services.open_direct_conversation(user=a, other_user_id=b.pk)
    pairs.append({{"conversation": encode_id("Conversation", c.pk), "tokens": [ta, tb], "ids": [a.pk, b.pk]}})
members = users(range(10000, 10000 + {GROUP_SIZE}))
befriend([(members[0][0], u) for u, _ in members[1:]])
g = services.create_group(owner=members[0][0], title="bench", member_ids=[u.pk for u, _ in members[1:]])
print(json.dumps({{"pairs": pairs, "group": {{"conversation": encode_id("Conversation", g.pk),
      "tokens": [t for _, t in members], "ids": [u.pk for u, _ in members]}}}}))
""")


# --- the load generators ----------------------------------------------------------------------------------
# CLIENT_PROCESSES processes, started once; each holds its share of every socket set (connected once, during
# set-up) and runs the scenarios on command. Per run, each publishes [senders finished, sent, answered (ack or
# error), acked, delivered] in its row of a shared array, so that every process stops draining as soon as every
# expected delivery has arrived (at the latest when nothing arrived for DRAIN_IDLE_SECONDS).
_ROW = 5


def _client_process(commands, replies, counters, slot: int) -> None:
    asyncio.run(_client(commands, replies, counters, slot))


async def _client(commands, replies, counters, slot: int) -> None:
    import websockets

    loop = asyncio.get_running_loop()
    sets: dict[str, list] = {}  # socket set → [(websocket, ack queue)]
    readers: list[asyncio.Task] = []
    run: dict = {}

    async def open_one(url: str, auth: dict):
        ws = await websockets.connect(url, max_queue=None, open_timeout=60, ping_interval=None)
        await ws.send(json.dumps(auth))
        while json.loads(await ws.recv())["type"] != "auth.ok":
            pass
        return ws

    async def reader(ws, acks: asyncio.Queue) -> None:
        async for raw in ws:
            if not run:
                continue
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind in ("ack", "error"):
                run["acks" if kind == "ack" else "errors"] += 1
                if run["closed"]:
                    acks.put_nowait(frame)
            elif kind == "message":
                body = frame["message"].get("body") or ""
                if body.startswith("bench "):
                    now = time.perf_counter()
                    run["last_frame"] = now
                    run["latencies"].append(now - float(body.split()[2]))

    def publish(finished: bool) -> None:
        with counters.get_lock():
            counters[slot * _ROW:(slot + 1) * _ROW] = [float(finished), run["sent"], run["acks"] + run["errors"],
                                                      run["acks"], len(run["latencies"])]

    def everything_arrived(receivers: int) -> bool:
        with counters.get_lock():
            rows = [counters[k:k + _ROW] for k in range(0, len(counters), _ROW)]
        finished, sent, answered, acked, delivered = (sum(column) for column in zip(*rows, strict=True))
        return finished == len(rows) and answered >= sent and delivered >= acked * receivers

    async def load(key: str, senders: list[tuple[int, dict]], seconds: float, rate_per_sender: float | None,
                   start_at: float, receivers: int) -> dict:
        conns = sets[key]
        for _, acks in conns:
            while not acks.empty():
                acks.get_nowait()
        run.clear()
        run.update(closed=rate_per_sender is None, acks=0, errors=0, sent=0, latencies=[], last_frame=0.0)
        publish(False)
        await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
        began = time.perf_counter()
        stop = began + seconds

        async def closed_sender(index: int, template: dict) -> None:
            ws, acks = conns[index]
            k = 0
            while time.perf_counter() < stop:
                cid = f"p{os.getpid()}-{index}-{k}-{began:.3f}"
                k += 1
                await ws.send(json.dumps({**template, "client_msg_id": cid,
                                          "text": f"bench {cid} {time.perf_counter():.6f}"}))
                run["sent"] += 1
                answer = await asyncio.wait_for(acks.get(), 60)
                if answer.get("type") != "ack":
                    raise RuntimeError(answer)

        async def open_sender(index: int, template: dict) -> None:
            ws, _ = conns[index]
            interval = 1.0 / rate_per_sender
            due = began + random.random() * interval  # senders spread over the first interval
            k = 0
            while due < stop:
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                cid = f"p{os.getpid()}-{index}-{k}-{began:.3f}"
                k += 1
                # The scheduled time, not the time the send got round: lateness here is latency too.
                await ws.send(json.dumps({**template, "client_msg_id": cid, "text": f"bench {cid} {due:.6f}"}))
                run["sent"] += 1
                due += interval

        sender = closed_sender if rate_per_sender is None else open_sender
        await asyncio.gather(*(sender(i, t) for i, t in senders))
        await asyncio.sleep(max(0.0, stop - time.perf_counter()))  # a process without senders still listens
        sent_until = time.perf_counter()
        while True:
            publish(True)
            now = time.perf_counter()
            if (everything_arrived(receivers) or now - sent_until >= DRAIN_SECONDS
                    or now - max(run["last_frame"], sent_until) >= DRAIN_IDLE_SECONDS):
                break
            await asyncio.sleep(0.02)
        result = {"acks": run["acks"], "errors": run["errors"], "latencies": run["latencies"], "began": began,
                  "sent_until": sent_until,
                  "last_delivery": max(began, run["last_frame"]) if run["latencies"] else began}
        run.clear()  # frames of this run arriving later are not counted in the next
        return result

    while True:
        command = await loop.run_in_executor(None, commands.get)
        if command[0] == "connect":  # ("connect", set, url, auth frames)
            _, key, url, auths = command
            conns = []
            for start in range(0, len(auths), 50):
                conns.extend(await asyncio.gather(*(open_one(url, a) for a in auths[start:start + 50])))
            sets[key] = [(ws, asyncio.Queue()) for ws in conns]
            readers.extend(asyncio.create_task(reader(ws, acks)) for ws, acks in sets[key])
            replies.put(("connected", key))
        elif command[0] == "close":  # ("close", set)
            await asyncio.gather(*(ws.close() for ws, _ in sets.pop(command[1], [])), return_exceptions=True)
            replies.put(("closed", command[1]))
        elif command[0] == "load":
            replies.put(("loaded", await load(*command[1:])))
        elif command[0] == "stop":
            for task in readers:
                task.cancel()
            await asyncio.gather(*(ws.close() for conns in sets.values() for ws, _ in conns),
                                 return_exceptions=True)
            replies.put(("stopped", None))
            return


class LoadGenerators:
    """CLIENT_PROCESSES load-generator processes; socket sets are split between them in contiguous shares,
    each sender going with its socket."""

    def __init__(self) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.parts = max(1, CLIENT_PROCESSES)
        self.counters = ctx.Array("d", _ROW * self.parts)
        self.commands = [ctx.Queue() for _ in range(self.parts)]
        self.replies = [ctx.Queue() for _ in range(self.parts)]
        self.processes = [ctx.Process(target=_client_process, args=(q, r, self.counters, k), daemon=True)
                          for k, (q, r) in enumerate(zip(self.commands, self.replies, strict=True))]
        for process in self.processes:
            process.start()
        self.sizes: dict[str, int] = {}

    def bounds(self, key: str) -> list[int]:
        n = self.sizes[key]
        return [n * k // self.parts for k in range(self.parts + 1)]

    def ask(self, make_command) -> list:
        for k, queue in enumerate(self.commands):
            queue.put(make_command(k))
        return [queue.get(timeout=300)[1] for queue in self.replies]

    def connect(self, key: str, url: str, sockets: list[dict]) -> None:
        self.finish_connecting(self.start_connecting([(key, url, sockets)]))

    def start_connecting(self, sets: list[tuple[str, str, list[dict]]]) -> int:
        """Send connect commands for socket sets (key, url, auth frames) without waiting; returns how many
        replies `finish_connecting` has to collect."""
        for key, url, sockets in sets:
            self.sizes[key] = len(sockets)
            bounds = self.bounds(key)
            for k, queue in enumerate(self.commands):
                queue.put(("connect", key, url, sockets[bounds[k]:bounds[k + 1]]))
        return len(sets)

    def finish_connecting(self, count: int) -> None:
        for queue in self.replies:
            for _ in range(count):
                queue.get(timeout=300)

    def close(self, key: str) -> None:
        self.ask(lambda k: ("close", key))

    def stop(self) -> None:
        """Each closes its sockets and exits (quick mode: terminated, nothing left to measure)."""
        try:
            if not QUICK:
                self.ask(lambda k: ("stop",))
        finally:
            for process in self.processes:
                process.join(timeout=0 if QUICK else 10)
                if process.is_alive():
                    process.terminate()
                    process.join(timeout=10)

    def load(self, key: str, senders: list[tuple[int, dict]], seconds: float, expected_receivers: int,
             offered_per_s: float | None = None) -> dict:
        """senders: (socket index in the set, send frame template). `offered_per_s`: open loop at that total
        rate (shared by the senders), else closed loop."""
        bounds = self.bounds(key)
        rate_per_sender = offered_per_s / len(senders) if offered_per_s else None
        start_at = time.perf_counter() + 0.1  # perf_counter is the machine's monotonic clock: one start for all
        out = self.ask(lambda k: ("load", key, [(i - bounds[k], t) for i, t in senders if bounds[k] <= i < bounds[k + 1]],
                                  seconds, rate_per_sender, start_at, expected_receivers))
        acks = sum(r["acks"] for r in out)
        lat = sorted(x for r in out for x in r["latencies"])
        began = min(r["began"] for r in out)
        send_time = max(r["sent_until"] for r in out) - began
        delivery_time = max(r["last_delivery"] for r in out) - began
        expected = acks * expected_receivers
        return {
            "offered_per_s": offered_per_s,
            "acks": acks,
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
            echo_env = {**env, "PYTHONPATH": str(ROOT / "bench")}
            servers = {"daphne": {}, "uvicorn": {}}
            launched = []
            pids: dict[str, int] = {}  # "chat", "echo", "echo-fanout", "chat/uv", "echo/uv" → server process
            try:
                for server in ("daphne", "uvicorn") if UVICORN else ("daphne",):  # they start while data is written
                    apps = [("backend.asgi:application", env, "chat"), ("echo_asgi:application", echo_env, "echo")]
                    if server == "daphne":
                        apps.append(("echo_fanout_asgi:application", echo_env, "echo-fanout"))
                    for app, app_env, name in apps:
                        log = logs / f"{server}-{name}.log"
                        process, port = launch_server(app_env, app, log, server=server)
                        processes.append(process)
                        launched.append((process, port, log))
                        servers[server][name] = f"ws://127.0.0.1:{port}/ws/"
                        pids[name if server == "daphne" else f"{name}/uv"] = process.pid
                generators = LoadGenerators()  # they start while data is written, too
                worker = DjangoWorker(env)  # Django loads while the servers do
                try:
                    for process, port, log in launched:
                        wait_listening(process, port, log)
                    t_servers = time.time()
                    sets = echo_socket_sets()
                    # The echo sockets connect while the data is written (the generators do it in the background).
                    echo_connecting = generators.start_connecting(
                        [(key, servers["daphne"]["echo"], sets[key][0]) for key in ("direct-echo", "group-echo")]
                        + [("direct-echo-fanout", servers["daphne"]["echo-fanout"], sets["direct-echo-fanout"][0])])
                    data = prepare_data(worker)
                    worker.close()
                    t_data = time.time()
                    sets |= chat_socket_sets(data)
                    generators.finish_connecting(echo_connecting)
                    generators.finish_connecting(generators.start_connecting(
                        [(key, servers["daphne"]["chat"], sets[key][0]) for key in ("direct", "group")]))
                    print(f"set-up: servers listening after {t_servers - t0:.1f} s, data written after "
                          f"{t_data - t0:.1f} s, {sum(len(v[0]) for v in sets.values())} sockets connected after "
                          f"{time.time() - t0:.1f} s", flush=True)
                    with measuring():  # quick mode: the machine to itself (bench/turns.py)
                        run_scenarios(data, servers, sets, generators, pids, logs)
                finally:
                    t_end = time.time()
                    worker.close()
                    stop_processes(processes)  # first: in quick mode, then nobody waits for polite closes
                    t_servers = time.time()
                    generators.stop()
            finally:
                stop_processes(processes)
                t_generators = time.time()
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    print(f"clean-up: servers {t_servers - t_end:.1f} s, load generators {t_generators - t_servers:.1f} s, "
          f"database and Redis {time.time() - t_generators:.1f} s")
    print(f"total bench time {time.time() - t0:.0f} s")


def echo_socket_sets() -> dict[str, tuple[list[dict], list[tuple[int, dict]]]]:
    """The echo scenarios' sockets (auth frames: groups to join) and senders (socket index, send frame template):
    the same shapes as the chat scenarios, and no data needed, so they connect while the data is written."""
    def pairs(prefix: str) -> tuple[list[dict], list[tuple[int, dict]]]:
        sockets, senders = [], []
        for p in range(PAIRS):  # A of each pair sends to B's group, as in the 1:1 chat scenario
            sockets += [{"type": "auth", "groups": [f"{prefix}{p}a"]}, {"type": "auth", "groups": [f"{prefix}{p}b"]}]
            senders.append((2 * p, {"type": "send", "group": f"{prefix}{p}b"}))
        return sockets, senders

    e_sockets = [{"type": "auth", "groups": ["g"]} for _ in range(GROUP_SIZE)]
    e_senders = [(i, {"type": "send", "group": "g"}) for i in range(GROUP_SENDERS)]
    # The two echoes share Redis: their groups have names of their own, or each would ring the other's sockets.
    return {"direct-echo": pairs("u"), "group-echo": (e_sockets, e_senders), "direct-echo-fanout": pairs("f")}


def chat_socket_sets(data: dict) -> dict[str, tuple[list[dict], list[tuple[int, dict]]]]:
    """The chat scenarios' sockets (auth frames) and senders (socket index, send frame template)."""
    # 1:1 — every pair: A sends to B (B also hears nothing else). Chat rings both members' sockets; the echo
    # consumer rings B's only, so chat delivers twice per message: compare accepted/s, and deliveries/s loosely.
    pair_sockets, pair_senders = [], []
    for p, pair in enumerate(data["pairs"]):
        pair_sockets += [{"type": "auth", "token": pair["tokens"][who]} for who in (0, 1)]
        pair_senders.append((2 * p, {"type": "send", "conversation_id": pair["conversation"]}))
    group = data["group"]
    g_sockets = [{"type": "auth", "token": t} for t in group["tokens"]]
    g_senders = [(i, {"type": "send", "conversation_id": group["conversation"]}) for i in range(GROUP_SENDERS)]
    return {"direct": (pair_sockets, pair_senders), "group": (g_sockets, g_senders)}


def run_scenarios(data: dict, servers: dict, sets: dict, generators: LoadGenerators, pids: dict[str, int],
                  logs: Path) -> None:
    """The measured runs, on the socket sets connected during set-up (the 1:1 sets are reconnected to uvicorn
    for its runs: the same users on two servers at once would hear every message twice)."""
    pair_sockets, pair_senders = sets["direct"]
    g = len(sets["group"][0])
    direct_label = f"1:1, {len(pair_sockets)} sockets, {len(pair_senders)} senders"
    group_label = f"group of {g}, {GROUP_SENDERS} senders"
    uvicorn = servers["uvicorn"]
    rows = []  # (label, server, mode, result)

    def run(label: str, server: str, key: str, receivers: int, offered=None) -> dict:
        began = time.perf_counter()
        if QUICK:  # the servers have finished with the last run (no fixed pause)
            for pid in pids.values():
                wait_quiet(pid, quiet=0.1, at_most=SETTLE_SECONDS)
        else:
            time.sleep(SETTLE_SECONDS)
        server_pid = pids[server]
        cpu_before = cpu_seconds(server_pid)
        result = generators.load(key, sets[key.removesuffix("-uv")][1], OPEN_SECONDS if offered else SECONDS,
                                 receivers, offered)
        # The server's CPU per accepted message, deliveries included: what a message costs, whatever else
        # the machine was doing (the throughput figures move with the machine's load, this much less).
        result["cpu_ms_per_msg"] = 1000 * (cpu_seconds(server_pid) - cpu_before) / max(1, result["acks"])
        result["took_s"] = time.perf_counter() - began  # settling, sending, draining
        rows.append((label, server, "open" if offered else "closed", result))
        return result

    direct = run(direct_label, "chat", "direct", 2)
    direct_echo = run(direct_label, "echo", "direct-echo", 1)
    direct_echo_fanout = run(direct_label, "echo-fanout", "direct-echo-fanout", 1)
    grp = run(group_label, "chat", "group", g)
    grp_echo = run(group_label, "echo", "group-echo", g)
    # Open loop at half of this run's closed-loop maximum.
    direct_open = run(direct_label, "chat", "direct", 2, offered=direct["accepted_per_s"] / 2)
    group_open = run(group_label, "chat", "group", g, offered=grp["accepted_per_s"] / 2)
    direct_uv = direct_echo_uv = None
    if uvicorn:
        generators.close("direct")
        generators.close("direct-echo")
        generators.connect("direct-uv", uvicorn["chat"], pair_sockets)
        generators.connect("direct-echo-uv", uvicorn["echo"], sets["direct-echo"][0])
        direct_uv = run(direct_label, "chat/uv", "direct-uv", 2)
        direct_echo_uv = run(direct_label, "echo/uv", "direct-echo-uv", 1)

    print(f"\nbench/chat.py — one Daphne + Redis + PostgreSQL, {SECONDS:g} s per closed-loop run, {OPEN_SECONDS:g} s "
          f"per open-loop run, {CLIENT_PROCESSES} client processes{', quick' if QUICK else ''}")
    print(f"{'scenario':34} {'server':11} {'mode':6} {'offered/s':>9} {'accepted/s':>10} {'deliveries/s':>12} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>8} {'delivered':>14} {'%':>6} {'took s':>6}")
    for label, server, mode, r in rows:
        offered = f"{r['offered_per_s']:9.1f}" if r["offered_per_s"] else f"{'max':>9}"
        print(f"{label:34} {server:11} {mode:6} {offered} {r['accepted_per_s']:10.1f} {r['deliveries_per_s']:12.1f} "
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
    # channels-redis drops what is past a channel's capacity: the echo's accepted/s is not all delivered
    figure("chat.echo.direct.delivered_pct", round(direct_echo["delivered_pct"], 2), "%")
    figure("chat.direct.ratio_accepted_vs_echo", ratio(direct["accepted_per_s"], direct_echo["accepted_per_s"]),
           "ratio", ">= 0.5")
    figure("chat.echo_fanout.direct.accepted_per_s", round(direct_echo_fanout["accepted_per_s"], 1), "msg/s")
    figure("chat.echo_fanout.direct.deliveries_per_s", round(direct_echo_fanout["deliveries_per_s"], 1),
           "deliveries/s")
    figure("chat.echo_fanout.direct.delivered_pct", round(direct_echo_fanout["delivered_pct"], 2), "%")
    figure("chat.echo_fanout.direct.server_cpu_ms_per_msg", round(direct_echo_fanout["cpu_ms_per_msg"], 2),
           "ms CPU/msg")
    figure("chat.direct.ratio_accepted_vs_echo_fanout",  # the echo on the chat's own transport, no database
           ratio(direct["accepted_per_s"], direct_echo_fanout["accepted_per_s"]), "ratio")
    figure("chat.direct.server_cpu_ms_per_msg", round(direct["cpu_ms_per_msg"], 2), "ms CPU/msg")
    figure("chat.echo.direct.server_cpu_ms_per_msg", round(direct_echo["cpu_ms_per_msg"], 2), "ms CPU/msg")
    figure("chat.direct.ratio_cpu_echo_vs_chat", ratio(direct_echo["cpu_ms_per_msg"], direct["cpu_ms_per_msg"]),
           "ratio")
    figure("chat.group200.server_cpu_ms_per_msg", round(grp["cpu_ms_per_msg"], 2), "ms CPU/msg")
    figure("chat.echo.group200.server_cpu_ms_per_msg", round(grp_echo["cpu_ms_per_msg"], 2), "ms CPU/msg")
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
