"""Reconnect storm and idle-socket memory on one Daphne + Redis + PostgreSQL.

    .venv/bin/python bench/reconnect.py       (from the repository root; BENCH_QUICK=1: 200 sockets)

BENCH_SOCKETS (5,000; quick 200) distinct users, each with its own access token, in groups of BENCH_GROUP
(250) members. Phases, all against one Daphne on a scratch database (bench/servers.py):
1. Connect and authenticate every user's socket, the first BENCH_IDLE_SMALL (1,000; quick 100) then the rest,
   from BENCH_CLIENT_PROCESSES (4) client processes, BENCH_CONNECT_INFLIGHT (16) handshakes in flight each. The Daphne process's RSS is read before the first socket
   (after a warm-up socket came and went) and after each step, sockets idle for a moment: bytes per idle
   authenticated socket = RSS growth / sockets.
2. Every socket closes. While everyone is away each group gets BENCH_MISSED (5) messages.
3. The storm: every user reconnects at once (each client process keeps at most BENCH_INFLIGHT (250) handshakes
   in flight, as a crowd of phones would not all hit the same millisecond), authenticates and sends `resume`
   naming its group with the last seq it held; it is done at `resume.done`. A refused or dropped handshake
   (Daphne answers 403 when the app has not accepted within its 5 s connect timeout) is retried after a
   jittered backoff, as the app does, up to 8 attempts; retries are counted. Reported: sockets/s, the time to
   the last `resume.done` (goal <= 30 s), and what was lost: every missed message must arrive on every socket.
Prints figures (bench/report.py); asserts nothing about them.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import figure, quick  # noqa: E402
from bench.servers import (  # noqa: E402
    DjangoWorker,
    launch_server,
    raise_fd_limit,
    rss_bytes,
    scratch_environment,
    stop_processes,
    wait_listening,
    wait_quiet,
)
from bench.turns import measuring  # noqa: E402

QUICK = quick()
SOCKETS = int(os.environ.get("BENCH_SOCKETS", "200" if QUICK else "5000"))
IDLE_SMALL = min(SOCKETS, int(os.environ.get("BENCH_IDLE_SMALL", "100" if QUICK else "1000")))
GROUP = int(os.environ.get("BENCH_GROUP", "250"))
MISSED = int(os.environ.get("BENCH_MISSED", "5"))
CLIENT_PROCESSES = int(os.environ.get("BENCH_CLIENT_PROCESSES", "4"))
INFLIGHT = int(os.environ.get("BENCH_INFLIGHT", "250"))
CONNECT_INFLIGHT = int(os.environ.get("BENCH_CONNECT_INFLIGHT", "16"))  # per process, setting up idle sockets
ATTEMPTS = 8  # per socket, with backoff (0.5 s doubling to 8 s, jittered)
IDLE_SETTLE_SECONDS = 3.0  # full mode: a fixed pause; quick mode waits until Daphne has used no CPU for 0.2 s


def settle(daphne_pid: int) -> None:
    """Let the server finish what the last step sent it (connects, disconnects) before reading its RSS."""
    if QUICK:
        wait_quiet(daphne_pid, quiet=0.2, at_most=IDLE_SETTLE_SECONDS)
    else:
        time.sleep(IDLE_SETTLE_SECONDS)


def prepare_data(worker: DjangoWorker) -> dict:
    """SOCKETS users with a device and an access token each, written in bulk; groups of GROUP through the chat
    service (its owner befriended with every member: only friends share a group)."""
    return worker.run(f"""
import json
from backend.accounts.models import Device, User
from backend.accounts.models import phone_index
from backend.accounts.tokens import issue_access_token
from backend.chat import services
from backend.chat.models import Conversation
from backend.circles.models import Friendship
from backend.core.ids import encode_id
users = User.objects.bulk_create([User(phone=f"+86133{{i:08d}}", phone_index=phone_index(f"+86133{{i:08d}}"),
                                       display_name=f"r{{i}}", password="!") for i in range({SOCKETS})],
                                 batch_size=1000)
devices = Device.objects.bulk_create([Device(user=u, name="bench") for u in users], batch_size=1000)
tokens = [issue_access_token(user_id=d.user_id, device_id=d.pk, generation=d.generation)[0] for d in devices]
groups, member_of = [], []
for g, start in enumerate(range(0, len(users), {GROUP})):
    members = users[start:start + {GROUP}]
    Friendship.objects.bulk_create([Friendship(user=a, friend=b) for m in members[1:]
                                    for a, b in ((members[0], m), (m, members[0]))], batch_size=2000)
    c = services.create_group(owner=members[0], title=f"storm {{g}}", member_ids=[m.pk for m in members[1:]])
    groups.append({{"id": c.pk, "gid": encode_id("Conversation", c.pk), "owner": members[0].pk,
                   "seq": Conversation.objects.get(pk=c.pk).last_seq}})
    member_of += [g] * len(members)
print(json.dumps({{"tokens": tokens, "groups": groups, "member_of": member_of}}))
""")


def send_missed(worker: DjangoWorker, groups: list[dict]) -> dict[str, int]:
    """MISSED messages into every group while its members are away; the groups' last seqs afterwards."""
    return worker.run(f"""
import json
from types import SimpleNamespace
from backend.accounts.models import User
from backend.chat import services
from backend.chat.models import Conversation
groups = {json.dumps(groups)}
last = {{}}
for g in groups:
    owner = User.objects.get(pk=g["owner"])
    for k in range({MISSED}):
        services.send_message(conversation_id=g["id"], sender=owner, client_msg_id=f"missed-{{g['id']}}-{{k}}",
                              text=f"while you were away {{k}}")
    last[g["gid"]] = Conversation.objects.get(pk=g["id"]).last_seq
print(json.dumps(last))
""")


# --- the client processes ------------------------------------------------------------------------------------

def _client_process(url: str, mine: list[tuple[str, str]], commands, replies) -> None:
    raise_fd_limit(len(mine) + 512)
    asyncio.run(_client(url, mine, commands, replies))


async def _client(url: str, mine: list[tuple[str, str]], commands, replies) -> None:
    """`mine`: (token, conversation gid) per socket. Obeys commands from the bench process in turn."""
    import websockets

    loop = asyncio.get_running_loop()
    conns: list = []
    gate = asyncio.Semaphore(INFLIGHT)  # the storm
    gentle = asyncio.Semaphore(CONNECT_INFLIGHT)  # setting up the idle sockets
    retries = 0

    async def authenticated(token: str):
        ws = await websockets.connect(url, max_queue=None, open_timeout=120, ping_interval=None, close_timeout=5)
        try:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 120))
                if frame["type"] == "auth.ok":
                    return ws
                if frame["type"] == "error" and frame.get("code") == "AUTH_TIMEOUT":
                    # The server was too busy to read our auth frame in time: an app tries again.
                    raise ConnectionError(f"AUTH_TIMEOUT: {frame.get('message')}")
                if frame["type"] == "error":
                    raise RuntimeError(frame)
        except BaseException:
            await ws.close()
            raise

    async def with_retries(attempt_once, gate: asyncio.Semaphore):
        """As an app does: a refused or dropped handshake is tried again after a growing, jittered pause."""
        nonlocal retries
        for attempt in range(ATTEMPTS):
            async with gate:
                try:
                    return await attempt_once()
                except (TimeoutError, OSError, websockets.exceptions.WebSocketException) as exc:
                    if attempt == ATTEMPTS - 1:
                        return exc
                    retries += 1
            await asyncio.sleep(min(8.0, 0.5 * 2 ** attempt) * (0.5 + random.random()))

    async def connect(token: str):
        try:
            return await with_retries(lambda: authenticated(token), gentle)
        except Exception as exc:  # counted: a socket that never came up is a result
            return exc

    async def resumed(token: str, gid: str, from_seq: int, to_seq: int, go: float) -> tuple[float | None, int, str]:
        ws = await authenticated(token)
        await ws.send(json.dumps({"type": "resume", "id": "r", "conversations": {gid: from_seq}}))
        seen: set[int] = set()
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 120))
            if frame["type"] == "message" and frame["message"]["conversation_id"] == gid:
                seen.add(frame["message"]["seq"])
            elif frame["type"] == "resume.done":
                done = time.perf_counter() - go
                break
            elif frame["type"] in ("resync", "error"):
                await ws.close()
                return None, 0, str(frame)[:200]
        conns.append(ws)
        return done, len(set(range(from_seq + 1, to_seq + 1)) - seen), ""

    async def storm(token: str, gid: str, from_seq: int, to_seq: int, go: float) -> tuple[float | None, int, str]:
        """Reconnect, resume; (seconds after `go` of resume.done, missed messages that did not arrive on a socket
        that resumed, error). A socket that never resumed is a failed socket, its messages are not "lost"."""
        try:
            result = await with_retries(lambda: resumed(token, gid, from_seq, to_seq, go), gate)
        except Exception as exc:
            result = exc
        if isinstance(result, BaseException):  # never came back: counted as failed, not as lost messages
            return None, 0, f"{type(result).__name__}: {result}"[:200]
        return result

    connected = 0
    while True:
        command = await loop.run_in_executor(None, commands.get)
        if command[0] == "connect":  # ("connect", how many more of mine)
            batch = mine[connected:connected + command[1]]
            began = time.perf_counter()
            results = await asyncio.gather(*(connect(token) for token, _ in batch))
            errors = [r for r in results if isinstance(r, Exception)]
            conns.extend(r for r in results if not isinstance(r, Exception))
            connected += len(batch)
            replies.put(("connected", len(batch) - len(errors), time.perf_counter() - began,
                         [repr(e)[:200] for e in errors[:3]]))
        elif command[0] == "close":
            await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
            conns.clear()
            connected = 0  # the next "connect" starts again from the first of mine
            replies.put(("closed",))
        elif command[0] == "storm":  # ("storm", {gid: seq before}, {gid: seq after}, go)
            _, before, after, go = command
            retries = 0
            results = await asyncio.gather(*(storm(token, gid, before[gid], after[gid], go) for token, gid in mine))
            replies.put(("stormed", [r[0] for r in results], sum(r[1] for r in results),
                         [r[2] for r in results if r[2]][:3], sum(1 for r in results if r[2]), retries))
        elif command[0] == "stop":
            await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
            replies.put(("stopped",))
            return


# --- the bench process ---------------------------------------------------------------------------------------

class Clients:
    """CLIENT_PROCESSES processes sharing the sockets; each command goes to all and waits for all replies."""

    def __init__(self, url: str, sockets: list[tuple[str, str]]) -> None:
        ctx = multiprocessing.get_context("spawn")
        parts = max(1, min(CLIENT_PROCESSES, len(sockets)))
        self.shares = [sockets[k::parts] for k in range(parts)]
        self.commands = [ctx.Queue() for _ in range(parts)]
        self.replies = ctx.Queue()
        self.processes = [ctx.Process(target=_client_process, args=(url, share, q, self.replies))
                          for share, q in zip(self.shares, self.commands, strict=True)]
        for process in self.processes:
            process.start()

    def ask(self, make_command) -> list[tuple]:
        for k, queue in enumerate(self.commands):
            queue.put(make_command(k))
        return [self.replies.get(timeout=900) for _ in self.commands]

    def stop(self, *, politely: bool) -> None:
        """Politely: each closes its sockets and exits. Otherwise (the bench failed or was interrupted, they may
        be mid-storm): terminated at once."""
        try:
            if politely:
                self.ask(lambda k: ("stop",))
        finally:
            for process in self.processes:
                if not politely:
                    process.terminate()
                process.join(timeout=30)
                if process.is_alive():
                    process.kill()


def main() -> None:
    t0 = time.time()
    raise_fd_limit(SOCKETS + 2048)  # the Daphne child inherits it
    logs = Path(tempfile.mkdtemp(prefix="quanzi-bench-logs-"))
    processes = []
    try:
        with scratch_environment("reconnect") as env, DjangoWorker(env) as worker:
            # Daphne and the Django worker start side by side; the worker then writes the data, and later the
            # messages sent while everyone is away (no second Django start-up in the middle of the run).
            daphne, port = launch_server(env, "backend.asgi:application", logs / "daphne.log")
            processes.append(daphne)
            data = prepare_data(worker)
            print(f"reconnect bench: {SOCKETS} users in {len(data['groups'])} groups of up to {GROUP}, "
                  f"{CLIENT_PROCESSES} client processes, data ready in {time.time() - t0:.0f} s", flush=True)
            wait_listening(daphne, port, logs / "daphne.log")
            gids = [g["gid"] for g in data["groups"]]
            sockets = [(token, gids[g]) for token, g in zip(data["tokens"], data["member_of"], strict=True)]
            clients = Clients(f"ws://127.0.0.1:{port}/ws/", sockets)
            finished = False
            try:
                run(worker, data, clients, daphne.pid)
                finished = True
            finally:
                try:
                    clients.stop(politely=finished and not QUICK)  # quick: nothing left to measure
                finally:
                    stop_processes(processes)
                problems = [line for line in (logs / "daphne.log").read_text().splitlines()
                            if " ERROR " in line or "Traceback" in line]
                print(f"errors logged by Daphne: {len(problems)}" + "".join(f"\n  {p[:200]}" for p in problems[:5]))
                warnings = {line.split(" WARNING ", 1)[1][:160] for line in (logs / "daphne.log").read_text().splitlines()
                            if " WARNING quanzi" in line}
                print(f"kinds of warnings logged by Daphne: {len(warnings)}" + "".join(f"\n  {w}" for w in sorted(warnings)[:8]))
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    print(f"total bench time {time.time() - t0:.0f} s")


def run(worker: DjangoWorker, data: dict, clients: Clients, daphne_pid: int) -> None:
    parts = len(clients.shares)

    def connect(total: int) -> tuple[int, float]:
        """Bring the number of connected sockets up to `total` (spread over the processes)."""
        wanted = [len(share[:total // parts + (1 if k < total % parts else 0)]) for k, share in
                  enumerate(clients.shares)]
        have = connect.have
        began = time.perf_counter()
        replies = clients.ask(lambda k: ("connect", wanted[k] - have[k]))
        connect.have = wanted
        failures = [e for r in replies for e in r[3]]
        if failures:
            print("  connect failures, e.g.:", *failures[:3], sep="\n    ")
        return sum(r[1] for r in replies), time.perf_counter() - began

    connect.have = [0] * parts
    # Warm-up: one socket per process comes and goes, so the baseline includes what the first socket loads.
    connect(parts)
    clients.ask(lambda k: ("close",))
    connect.have = [0] * parts
    settle(daphne_pid)
    baseline = rss_bytes(daphne_pid)
    with measuring():  # quick mode: the machine to itself (bench/turns.py)
        storm(worker, data, clients, daphne_pid, connect, baseline)


def storm(worker: DjangoWorker, data: dict, clients: Clients, daphne_pid: int, connect, baseline: int) -> None:
    """The measured phases: idle sockets (small, large), everyone away, the storm."""
    small_ok, small_s = connect(IDLE_SMALL)
    settle(daphne_pid)
    rss_small = rss_bytes(daphne_pid)
    large_ok, large_s = connect(SOCKETS)
    settle(daphne_pid)
    rss_large = rss_bytes(daphne_pid)
    connected = large_ok + small_ok
    print(f"connected {connected}/{SOCKETS} sockets in {small_s + large_s:.1f} s; Daphne RSS "
          f"{baseline / 2**20:.0f} MiB → {rss_small / 2**20:.0f} MiB at {small_ok} → {rss_large / 2**20:.0f} MiB "
          f"at {connected}", flush=True)

    clients.ask(lambda k: ("close",))
    settle(daphne_pid)  # the server has processed every disconnect
    before = {g["gid"]: g["seq"] for g in data["groups"]}
    after = send_missed(worker, data["groups"])
    go = time.perf_counter()
    replies = clients.ask(lambda k: ("storm", before, after, go))
    wall = time.perf_counter() - go
    done = [t for r in replies for t in r[1] if t is not None]
    lost = sum(r[2] for r in replies)
    failed = sum(r[4] for r in replies)
    retried = sum(r[5] for r in replies)
    for error in [e for r in replies for e in r[3]][:3]:
        print(f"  storm failure: {error}")
    last = max(done) if done else None
    print(f"storm: {len(done)}/{SOCKETS} sockets resumed, last resume.done after "
          f"{last if last is None else round(last, 1)} s (all replies in {wall:.1f} s); "
          f"{lost} missed messages absent on the sockets that resumed\n")

    figure("reconnect.connect_per_s", round(connected / (small_s + large_s), 1), "sockets/s")
    figure("reconnect.idle_sockets_small", small_ok, "sockets")
    figure("reconnect.idle_kb_per_socket_small", round((rss_small - baseline) / max(1, small_ok) / 1024, 1), "KB",
           "<= 30")
    figure("reconnect.idle_sockets_large", connected, "sockets")
    figure("reconnect.idle_kb_per_socket_large", round((rss_large - baseline) / max(1, connected) / 1024, 1), "KB",
           "<= 30")
    figure("reconnect.storm_sockets", SOCKETS, "sockets")
    figure("reconnect.storm_sockets_per_s", round(len(done) / last, 1) if last else None, "sockets/s")
    figure("reconnect.storm_last_resume_done_s", round(last, 2) if last is not None else None, "s", "<= 30")
    figure("reconnect.storm_retried_handshakes", retried, "handshakes")
    figure("reconnect.storm_failed_sockets", failed, "sockets", "= 0")
    figure("reconnect.storm_lost_messages", lost, "messages", "= 0 (on the sockets that resumed)")


if __name__ == "__main__":
    main()
