"""One channel per process: a doorbell reaches a node once, and the node hands it to its sockets.

Every group a socket listens to — its user's group, its device's group, and the conversation groups of its
group and circle conversations — is joined by the process once, with one channel of its own
(`NodeFanout.channel`), while at least one local socket follows that group. The node's one reader receives
each doorbell once and hands it to the local sockets following the group it was rung on (`core.realtime`
puts the group's name in every doorbell, `group`).

Why: a 200-member group message used to mean 200 channel-layer messages, 200 pops and decodes (now one per
node; bench/chat.py, issue 15). And a socket no longer has a channel-layer channel of its own: its channel-
layer receive alone (channels-redis keeps two tasks and a queue per waiting receiver) and Channels' dispatch
loop over three sources (a task per source) were about 13 KB of every idle socket's ~44 KB. Now a socket is one
task waiting on one queue: Daphne's own input queue, which the node's doorbells join (`deliver_local`).

What does not change: the doorbell is only a hint and the database stays the truth. A socket with
`INBOX_CAPACITY` doorbells waiting loses the next one, as a full channel-layer buffer did before, and the seq
gap on the next doorbell, or the heartbeat's comparison with the database, delivers the message. The node's
membership in a group is refreshed every `REFRESH_SECONDS`, well inside the channel layer's group expiry (a
day), so a socket that lives for days keeps hearing its groups. When the node cannot receive (Redis gone) every
local socket is told (`node.unavailable`): it closes with 1013 and the phone reconnects and resumes, as when
each socket's own receive failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any, Protocol

from backend.core import realtime

from . import events

log = logging.getLogger("quanzi.ws")

INBOX_CAPACITY = 500  # doorbells waiting for one socket; past that they are dropped (the seq gap recovers them)
REFRESH_SECONDS = 3600.0
RETRY_SECONDS = 1.0  # after a failed receive
MEMBERSHIP_BATCH = 500  # group joins and leaves sent to the channel layer together (one round trip)


class Follower(Protocol):
    def deliver_local(self, event: dict) -> bool:
        """Queue a doorbell for the socket; False when its inbox is full (the doorbell is dropped)."""


def route_of(event: dict) -> str | None:
    """The group a doorbell was rung on. A node on the previous release rings without `group`: its
    conversation doorbells are still routed by conversation (a user-group doorbell from it is lost, and
    recovered by the heartbeat as any lost doorbell is)."""
    group = event.get("group")
    if group is None and event.get("conversation") is not None:
        return events.conversation_group(event["conversation"])
    return group


class NodeFanout:
    """This process's subscriptions to channel-layer groups, on one channel and one event loop."""

    def __init__(self, layer: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.layer = layer
        self.loop = loop
        self.channel: str | None = None
        self.followers: dict[str, set[Follower]] = {}  # group → local sockets following it
        self.joined_at: dict[str, float] = {}  # group → when this node's channel last joined it
        self._locks: dict[str, asyncio.Lock] = {}
        self._started = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self._socket_numbers = 0
        self._changes: list[tuple[bool, str, asyncio.Future]] = []  # joins/leaves waiting for the next batch
        self._changer: asyncio.Task | None = None

    async def start(self) -> str:
        """The node's channel (its reader starts with the first caller)."""
        if self.channel is not None:
            return self.channel
        async with self._started:
            if self.channel is None:
                # A plain channel name, unique to the process: read by `realtime.receive_many` in batches.
                channel = f"node.{uuid.uuid4().hex}"
                self._tasks = [asyncio.ensure_future(self._read(channel)), asyncio.ensure_future(self._refresh())]
                self.channel = channel
        return self.channel

    def socket_name(self) -> str:
        """A name for one local socket, unique across nodes (presence keeps one entry per socket)."""
        self._socket_numbers += 1
        return f"{self.channel}#{self._socket_numbers}"

    def _lock(self, group: str) -> asyncio.Lock:
        lock = self._locks.get(group)
        if lock is None:
            lock = self._locks[group] = asyncio.Lock()
        return lock

    async def follow(self, follower: Follower, group: str) -> None:
        """`follower` hears the doorbells rung on `group` from now on. Raises when the channel layer does."""
        if self.channel is None:
            await self.start()
        async with self._lock(group):
            if getattr(follower, "released", False):  # closed while waiting for the lock
                return
            followers = self.followers.get(group)
            if not followers:
                await self._change(True, group)
                self.joined_at[group] = time.monotonic()
                followers = self.followers.setdefault(group, set())
            followers.add(follower)

    def drop(self, follower: Follower, groups: list[str]) -> list[str]:
        """Forget a closing socket at once, without awaiting anything (a close timeout cannot leave it behind,
        still handed doorbells). Returns the groups nobody local follows any more: `leave_unfollowed` each."""
        emptied = []
        for group in groups:
            followers = self.followers.get(group)
            if followers and follower in followers:
                followers.discard(follower)
                if not followers:
                    emptied.append(group)
        return emptied

    async def leave_unfollowed(self, group: str) -> None:
        """Take the node's channel out of `group` unless a local socket follows it again meanwhile."""
        async with self._lock(group):
            if self.followers.get(group):
                return
            self.followers.pop(group, None)
            self.joined_at.pop(group, None)
            self._locks.pop(group, None)
            if self.channel is not None:
                await self._change(False, group)

    async def unfollow(self, follower: Follower, group: str) -> None:
        """The last local follower leaving takes the node's channel out of the group."""
        if self.drop(follower, [group]):
            await self.leave_unfollowed(group)

    def _change(self, join: bool, group: str) -> asyncio.Future:
        """Join or leave `group` in the next batch: every join and leave made meanwhile (a storm of sockets
        opening or closing) goes to the channel layer together, one batch at a time. A group's changes never
        overlap: each waits for its own under the group's lock."""
        done = self.loop.create_future()
        self._changes.append((join, group, done))
        if self._changer is None:
            self._changer = asyncio.ensure_future(self._send_changes())
        return done

    async def _send_changes(self) -> None:
        try:
            while self._changes:
                await asyncio.sleep(0)  # the callers of this turn of the loop join the batch
                batch, self._changes = self._changes[:MEMBERSHIP_BATCH], self._changes[MEMBERSHIP_BATCH:]
                try:
                    await realtime.change_groups(self.layer, self.channel, [(j, g) for j, g, _ in batch])
                except Exception as exc:
                    for _, _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                else:
                    for _, _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._changer = None

    async def _read(self, channel: str) -> None:
        while True:
            try:
                found = await realtime.receive_many(self.layer, channel)
            except asyncio.CancelledError:
                raise
            except realtime.REDIS_UNAVAILABLE as exc:  # Redis gone: every local socket is told, then the reader retries
                log.warning("node fan-out: receive failed (%r); sockets told, retrying", exc)
                self.tell_everyone({"type": "node.unavailable", "error": repr(exc)[:200]})
                await asyncio.sleep(RETRY_SECONDS)
                continue
            except Exception:  # one doorbell that cannot be read (e.g. past the layer's encryption TTL): dropped
                log.warning("node fan-out: a doorbell could not be read; dropped (recovered by seq)", exc_info=True)
                continue
            for event in found:
                self.hand_out(event)

    def hand_out(self, event: dict) -> None:
        for follower in tuple(self.followers.get(route_of(event), ())):
            if not follower.deliver_local(event):
                log.warning("socket inbox full: doorbell for %s dropped (recovered by seq)", route_of(event))

    def tell_everyone(self, event: dict) -> None:
        for follower in {f for followers in self.followers.values() for f in followers}:
            follower.deliver_local(event)

    async def _refresh(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_SECONDS / 4)
            due = [g for g, at in self.joined_at.items() if time.monotonic() - at > REFRESH_SECONDS]
            for group in due:
                with contextlib.suppress(Exception):
                    async with self._lock(group):
                        if self.followers.get(group) and self.channel is not None:
                            await self.layer.group_add(group, self.channel)
                            self.joined_at[group] = time.monotonic()


_nodes: dict[int, NodeFanout] = {}  # id(channel layer) → the process's fan-out on it


def node_fanout(layer: Any) -> NodeFanout:
    """The fan-out of this process for `layer` on the running loop (tests run a loop per test: a fan-out
    left on a finished loop is replaced)."""
    loop = asyncio.get_running_loop()
    node = _nodes.get(id(layer))
    if node is None or node.layer is not layer or node.loop is not loop or node.loop.is_closed():
        node = _nodes[id(layer)] = NodeFanout(layer, loop)
    return node
