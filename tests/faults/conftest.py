"""Fault injection and fuzzing against real processes: Daphne nodes, our own redis-server, a Celery worker.

Every test here is checked against a *history*: each frame a client saw (acks, errors, messages) is recorded,
and the checks are about what a user was told — an acknowledged send is never lost, a conversation arrives
with no gaps and no duplicates by seq. Nothing touches the shared Redis on 6379: tests that stop Redis start
their own `redis-server` on a free loopback port.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import pytest
import websockets

from tests.chat.conftest import _chat_alone, _fresh_channel_layer, gid, new_user, token_for  # noqa: F401
from tests.e2e.conftest import DaphneNode, daphne_nodes, free_port, node_env  # noqa: F401
from tests.frames import validate_frame

SKIP = ("presence", "typing", "read")


# --- our own redis-server ---------------------------------------------------------------------------------


class RedisServer:
    """A private redis-server on a free loopback port: stoppable, pausable, restartable on the same port."""

    def __init__(self, directory: Path):
        self.port = free_port()
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None
        self.start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.log = open(self.directory / "redis.log", "a")
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.directory), "--protected-mode", "yes"],
            stdout=self.log, stderr=subprocess.STDOUT)
        import redis

        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=1).ping():
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        """Gone at once (SIGKILL): every connection is refused until `start`. Its data goes with it."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.log.close()

    def pause(self) -> None:
        """Frozen (SIGSTOP): connections stay open and hang, the nastier failure."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def cont(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.kill()


@pytest.fixture
def own_redis(tmp_path):
    """Start our own redis-server (never the shared one)."""
    if not shutil.which("redis-server"):
        if os.environ.get("REQUIRE_SERVICES"):
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


def own_redis_env(server: RedisServer, **extra) -> dict:
    """Env for a child process whose channel layer, cache, presence and broker are our own Redis."""
    return {"REDIS_URL": server.url(0), "CHANNELS_PREFIX": "faults", "CACHE_PREFIX": "faults", **extra}


# --- a client that keeps a history ------------------------------------------------------------------------


class History:
    """Everything clients were told, per client: acks, errors and messages, in the order they arrived."""

    def __init__(self) -> None:
        self.acks: dict[str, dict] = {}  # client_msg_id → the ack frame
        self.refused: dict[str, list[str]] = defaultdict(list)  # client_msg_id → error codes seen for it
        self.seen: dict[str, list[tuple[str, int]]] = defaultdict(list)  # client name → (conversation, seq)
        self.frames: dict[str, list[dict]] = defaultdict(list)

    def check_no_duplicates(self, name: str) -> None:
        seen = self.seen[name]
        dupes = {item for item in seen if seen.count(item) > 1}
        assert not dupes, f"{name} got these (conversation, seq) twice: {sorted(dupes)[:10]}"

    def check_gapless(self, name: str, conversation: str, upto: int) -> None:
        seqs = [seq for c, seq in self.seen[name] if c == conversation]
        assert seqs == list(range(1, upto + 1)), f"{name} saw {seqs}, expected 1..{upto} once each, in order"


class Client:
    """A phone: one socket at a time, every frame validated against docs/websocket-protocol.md and recorded."""

    def __init__(self, name: str, token: str, history: History):
        self.name, self.token, self.history = name, token, history
        self.ws = None
        self.last_seq: dict[str, int] = {}
        self.added_cursor: str | None = None

    async def connect(self, node, *, timeout: float = 10) -> None:
        self.ws = await websockets.connect(node.ws, max_queue=None, open_timeout=timeout)
        await self.ws.send(json.dumps({"type": "auth", "token": self.token}))
        ok = await self.receive(timeout)
        assert ok["type"] == "auth.ok", ok

    async def receive(self, timeout: float) -> dict:
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        validate_frame(frame)
        self.history.frames[self.name].append(frame)
        if frame["type"] == "message":
            message = frame["message"]
            conversation, seq = message["conversation_id"], message["seq"]
            self.history.seen[self.name].append((conversation, seq))
            self.last_seq[conversation] = max(self.last_seq.get(conversation, 0), seq)
        elif frame["type"] == "ack":
            self.history.acks[frame["client_msg_id"]] = frame
        elif frame["type"] == "resume.done":
            self.added_cursor = frame["added_cursor"]
        return frame

    async def send(self, frame: dict) -> None:
        await self.ws.send(json.dumps(frame))

    async def next(self, timeout: float = 10) -> dict:
        while True:
            frame = await self.receive(timeout)
            if frame["type"] not in SKIP:
                return frame

    async def until(self, predicate, timeout: float = 15) -> list[dict]:
        """Frames (presence chatter skipped) up to and including the first that `predicate` accepts."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            frame = await self.next(max(0.1, deadline - time.monotonic()))
            out.append(frame)
            if predicate(frame):
                return out

    async def send_message(self, conversation: str, client_msg_id: str, text: str, *, frame_id=None,
                           timeout: float = 20) -> dict:
        """Send and wait for its answer: the ack, or the error frame carrying its id."""
        frame_id = frame_id or client_msg_id
        await self.send({"type": "send", "id": frame_id, "conversation_id": conversation,
                         "client_msg_id": client_msg_id, "text": text})
        frames = await self.until(lambda f: f["type"] in ("ack", "error") and f.get("id") == frame_id, timeout)
        answer = frames[-1]
        if answer["type"] == "error":
            self.history.refused[client_msg_id].append(answer["code"])
        return answer

    async def resume(self, conversations: list[str], *, frame_id: str = "resume", timeout: float = 20) -> dict:
        await self.send({"type": "resume", "id": frame_id,
                         "conversations": {c: self.last_seq.get(c, 0) for c in conversations}})
        frames = await self.until(lambda f: f["type"] in ("resume.done", "error") and f.get("id") == frame_id,
                                  timeout)
        assert frames[-1]["type"] == "resume.done", frames[-1]
        return frames[-1]

    async def drain(self, seconds: float = 0.5) -> None:
        try:
            while True:
                await self.receive(seconds)
        except TimeoutError:
            return

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
