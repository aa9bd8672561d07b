"""One channel per process for conversation groups: a group message reaches a node once, not once per socket.

Group and circle conversations ring a conversation group (`events.conversation_group`). Before, every socket
joined that group with its own channel, so one message to a 200-member group meant 200 channel-layer messages:
200 entries appended in Redis, and 200 pops, decodes and buffer hand-offs in the receiving process's channel-
layer reader — most of the ~0.28 ms of CPU each delivery cost (bench/chat.py, issue 15). Now the process joins
the group once, with one channel of its own (`NodeFanout.channel`), while at least one of its sockets follows
the conversation; its reader receives each doorbell once and hands it to the local sockets that follow it,
through each socket's own inbox (`QuanziSocketConsumer.local_events`), which the consumer dispatches in turn
with its channel-layer and WebSocket events, one at a time, as before.

What does not change: the doorbell is only a hint and the database stays the truth. A socket whose inbox is
full loses the doorbell as a full channel-layer buffer did before (`INBOX_CAPACITY`, the layer's own capacity
was 100), and the seq gap on the next doorbell, or the heartbeat's comparison with the database, delivers the
message. Membership of the node's channel in a group is refreshed every `REFRESH_SECONDS`, well inside the
channel layer's group expiry (a day), so a node that keeps a conversation's sockets for days keeps hearing it.
User and device groups keep one channel per socket: they have one or two members.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from . import events

log = logging.getLogger("quanzi.ws")

INBOX_CAPACITY = 500  # doorbells waiting for one socket; past that they are dropped (the seq gap recovers them)
REFRESH_SECONDS = 3600.0


class NodeFanout:
    """This process's subscriptions to conversation groups, on one channel-layer channel and one event loop."""

    def __init__(self, layer: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.layer = layer
        self.loop = loop
        self.channel: str | None = None
        self.followers: dict[int, set[Any]] = {}  # conversation id → local consumers following it
        self.joined_at: dict[int, float] = {}  # conversation id → when this node's channel last joined its group
        self._locks: dict[int, asyncio.Lock] = {}
        self._started = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []

    async def _start(self) -> str:
        async with self._started:
            if self.channel is None:
                channel = await self.layer.new_channel()
                self._tasks = [asyncio.ensure_future(self._read(channel)), asyncio.ensure_future(self._refresh())]
                self.channel = channel
        return self.channel

    def _lock(self, conversation: int) -> asyncio.Lock:
        lock = self._locks.get(conversation)
        if lock is None:
            lock = self._locks[conversation] = asyncio.Lock()
        return lock

    async def follow(self, consumer: Any, conversation: int) -> None:
        """`consumer` hears this conversation's doorbells from now on. Raises when the channel layer does
        (the caller logs it; the heartbeat's comparison still delivers, later)."""
        channel = self.channel or await self._start()
        async with self._lock(conversation):
            followers = self.followers.get(conversation)
            if not followers:
                await self.layer.group_add(events.conversation_group(conversation), channel)
                self.joined_at[conversation] = time.monotonic()
                followers = self.followers.setdefault(conversation, set())
            followers.add(consumer)

    async def unfollow(self, consumer: Any, conversation: int) -> None:
        """The last local follower leaving takes the node's channel out of the group."""
        async with self._lock(conversation):
            followers = self.followers.get(conversation)
            if not followers or consumer not in followers:
                return
            followers.discard(consumer)
            if followers:
                return
            del self.followers[conversation]
            self.joined_at.pop(conversation, None)
            self._locks.pop(conversation, None)
            if self.channel is not None:
                await self.layer.group_discard(events.conversation_group(conversation), self.channel)

    async def _read(self, channel: str) -> None:
        while True:
            try:
                event = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis gone: the sockets find out themselves (their own receive fails)
                log.warning("node fan-out: receive failed; retrying", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            self.hand_out(event)

    def hand_out(self, event: dict) -> None:
        for consumer in tuple(self.followers.get(event.get("conversation"), ())):
            try:
                consumer.local_events.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("socket inbox full: doorbell for conversation %s dropped (recovered by seq)",
                            event.get("conversation"))

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS / 4)
            due = [c for c, at in self.joined_at.items() if time.monotonic() - at > REFRESH_SECONDS]
            for conversation in due:
                with contextlib.suppress(Exception):
                    async with self._lock(conversation):
                        if self.followers.get(conversation) and self.channel is not None:
                            await self.layer.group_add(events.conversation_group(conversation), self.channel)
                            self.joined_at[conversation] = time.monotonic()


_nodes: dict[int, NodeFanout] = {}  # id(channel layer) → the process's fan-out on it


def node_fanout(layer: Any) -> NodeFanout:
    """The fan-out of this process for `layer` on the running loop (tests run a loop per test: a fan-out
    left on a finished loop is replaced)."""
    loop = asyncio.get_running_loop()
    node = _nodes.get(id(layer))
    if node is None or node.layer is not layer or node.loop is not loop or node.loop.is_closed():
        node = _nodes[id(layer)] = NodeFanout(layer, loop)
    return node
