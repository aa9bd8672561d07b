"""The doorbell: tell live sockets that something changed. The database stays the truth.

Group names live here so any app can ring a user's or a device's sockets without importing chat.
Rings are sent after the surrounding transaction commits, so nobody hears of a row they cannot read yet.

Rings of one transaction are batched: `ring_on_commit` buffers them on one after-commit callback, which sends
them all in one `async_to_sync` call (group_sends gathered; one group's rings keep their order). The buffer
lives on a callback registered with Django's own `transaction.on_commit`, so it commits, rolls back and is
discarded with a savepoint exactly as that callback is (see `on_commit_batched`); nothing global is kept.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger("quanzi.realtime")

# Redis gone (refused, reset, frozen past the socket timeout): redis-py raises one of these (it wraps socket
# errors in them). Sockets answer SERVICE_UNAVAILABLE / close 1013 on them.
REDIS_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError)
RING_CONCURRENCY = 32  # group_sends in flight at once: below the Redis pool's limit (MaxConnectionsError past it)
_deferred: contextvars.ContextVar[list | None] = contextvars.ContextVar("deferred_rings", default=None)


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def device_group(device_id: int) -> str:
    return f"device.{device_id}"


def ring_now(group: str, event: dict) -> None:
    ring_many([(group, event)])


def ring_many(rings: list[tuple[str, dict]]) -> None:
    """Send several rings in one event-loop hop. Each doorbell carries the group it was rung on (`group`):
    a node hears all its sockets' groups on one channel and routes by it (backend/chat/fanout.py). Failures
    are logged, never raised: a lost doorbell is recovered by the client's resume, and a write must never fail
    because of one.

    Inside `deferred_rings()` (a socket consumer running a service off its event loop) the rings are kept
    instead, and the consumer sends them from its own loop with `send_deferred`.
    """
    if not rings:
        return
    collector = _deferred.get()
    if collector is not None:
        collector.append(list(rings))
        return
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        if _outer_loop_present() or not _batchable(layer):
            # On that loop (a consumer's), as asgiref routes it. The in-memory layer (tests, `make run`) keeps
            # this path too: its queues wake waiters on their own loop, which a call from another thread's
            # loop would not do safely.
            async_to_sync(_send_all)(layer, rings)
        else:
            _SENDER.add(layer, rings)
    except Exception:
        log.warning("doorbells to %s failed", sorted({group for group, _ in rings}), exc_info=True)


# --- the process's ring loop -----------------------------------------------------------------------------
#
# From a plain thread (a request or Celery worker thread, a bench thread) `async_to_sync` starts a new thread
# and a new event loop for every call, and channels-redis opens a new connection pool for every new loop: that
# was most of a ring's cost (measured: about a sixth of a wallet transfer's CPU). Such rings go instead to one
# long-lived loop per process, on a daemon thread, started on first use (and again after a fork). A thread
# inside `sync_to_async` (a socket consumer's database thread) keeps `async_to_sync`, which sends on the consumer's own loop; so does every ring on the
# in-memory channel layer.
#
# The caller does not wait for the send (issue 15): its rings join the loop's queue, and whatever callers queue
# while a send is under way leaves together in the next one (`_RingSender`) — one Redis pipeline for the rings
# of many transactions instead of one each, and no thread hand-off per transaction. Rings still leave after
# commit and in the order they were queued (one group's rings keep their order), and a failure is still only
# logged: a doorbell was always best-effort (the client's resume recovers a lost one). Only a backlog past
# RING_BACKLOG makes callers wait, so a stalled Redis cannot grow the queue without bound; a process on its way
# out sends what is queued (atexit, at most RING_TIMEOUT_SECONDS).

RING_TIMEOUT_SECONDS = 10.0
RING_BACKLOG = 5_000
_loop_guard = threading.Lock()
_loop_state: tuple[int, asyncio.AbstractEventLoop] | None = None  # (pid, loop)


def _outer_loop_present() -> bool:
    """Is this thread running under an event loop `async_to_sync` would use (or inside a running loop,
    where it refuses, as it should)?"""
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        pass
    from asgiref.sync import SyncToAsync

    local = SyncToAsync.threadlocal
    return (getattr(local, "main_event_loop_pid", None) == os.getpid()
            and getattr(local, "main_event_loop", None) is not None)


def _ring_loop() -> asyncio.AbstractEventLoop:
    global _loop_state
    state = _loop_state
    if state is not None and state[0] == os.getpid() and state[1].is_running():
        return state[1]
    with _loop_guard:
        state = _loop_state
        if state is None or state[0] != os.getpid() or not state[1].is_running():
            loop = asyncio.new_event_loop()
            started = threading.Event()
            loop.call_soon(started.set)
            threading.Thread(target=loop.run_forever, name="realtime-rings", daemon=True).start()
            started.wait()
            _loop_state = state = (os.getpid(), loop)
        return state[1]


class _RingSender:
    """The ring loop's queue of rings from plain threads (see above). Never raises for the caller."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._pending: list[tuple[Any, list[tuple[str, dict]]]] = []
        self._queued = 0  # rings pending or being sent
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop a drain runs on, None when idle

    def add(self, layer: Any, rings: list[tuple[str, dict]]) -> None:
        with self._lock:
            self._pending.append((layer, list(rings)))
            self._queued += len(rings)
            if self._loop is not None and self._loop.is_running():
                if self._queued > RING_BACKLOG:  # Redis is not keeping up: wait for the queue to shrink
                    deadline = time.monotonic() + RING_TIMEOUT_SECONDS
                    while self._queued > RING_BACKLOG and (left := deadline - time.monotonic()) > 0:
                        self._drained.wait(left)
                return
            self._loop = loop = _ring_loop()
        asyncio.run_coroutine_threadsafe(self._drain(), loop)

    async def _drain(self) -> None:
        while True:
            with self._lock:
                batch, self._pending = self._pending, []
                if not batch:
                    self._loop = None
                    self._drained.notify_all()
                    return
            by_layer: dict[int, tuple[Any, list[tuple[str, dict]]]] = {}
            for layer, rings in batch:
                by_layer.setdefault(id(layer), (layer, []))[1].extend(rings)
            for layer, rings in by_layer.values():
                try:
                    await _send_all(layer, rings)
                except Exception:
                    log.warning("doorbells to %s failed", sorted({group for group, _ in rings}), exc_info=True)
            with self._lock:
                self._queued -= sum(len(rings) for _, rings in batch)
                self._drained.notify_all()

    def flush(self, timeout: float = RING_TIMEOUT_SECONDS) -> None:
        """Wait until what is queued now has been sent (a process on its way out; tests)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._loop is not None and (left := deadline - time.monotonic()) > 0:
                self._drained.wait(left)


_SENDER = _RingSender()
atexit.register(_SENDER.flush)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_SENDER._reset)  # what was queued belongs to the parent


def flush_rings(timeout: float = RING_TIMEOUT_SECONDS) -> None:
    """Wait until the rings this process queued for its ring loop have been sent."""
    _SENDER.flush(timeout)


async def _send_all(layer: Any, rings: list[tuple[str, dict]]) -> None:
    if _batchable(layer):
        try:
            await _redis_group_send_many(layer, rings)
        except Exception:
            log.warning("doorbells to %s failed", sorted({group for group, _ in rings}), exc_info=True)
        return
    by_group: dict[str, list[dict]] = {}
    for group, event in rings:
        by_group.setdefault(group, []).append(event)
    gate = asyncio.Semaphore(RING_CONCURRENCY)

    async def send_group(group: str, events: list[dict]) -> None:
        async with gate:
            for event in events:  # in order within a group: a socket hears one user's frames as they were written
                try:
                    await layer.group_send(group, {**event, "group": group})
                except Exception:
                    log.warning("doorbell to %s failed", group, exc_info=True)

    await asyncio.gather(*(send_group(group, events) for group, events in by_group.items()))


# --- many group_sends as one (channels-redis) ------------------------------------------------------------
#
# channels-redis's group_send costs four Redis round trips (expire the group, read it, expire the inboxes, a
# Lua script that appends), so a 1:1 message (two user groups) cost eight, in two chains of four. The rings
# of one batch go out here in two: one script reads every group, one script appends every message to every
# inbox, with what group_send itself would write (the same serialized, encrypted message per process inbox,
# the same capacity check, expiry and "over capacity" accounting). Messages to one inbox keep their order:
# the script gives each its own increasing score (channels-redis pops the lowest first).

_APPEND_MANY = """
local n = #KEYS
local now = tonumber(ARGV[3 * n + 1])
local expiry = tonumber(ARGV[3 * n + 2])
local over = 0
for i = 1, n do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, math.floor(now) - expiry)
    if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[n + i]) then
        redis.call('ZADD', KEYS[i], ARGV[2 * n + i], ARGV[i])
        redis.call('EXPIRE', KEYS[i], expiry)
    else
        over = over + 1
    end
end
return over
"""


# What group_send does to read a group (drop members past the group expiry, list the rest), for every group of a
# batch in one call; only groups with members come back (index, members): a doorbell to a user with no socket
# open, the common case, costs no reply to parse.
_READ_GROUPS = """
local cutoff = tonumber(ARGV[1])
local found = {}
for i = 1, #KEYS do
    redis.call('ZREMRANGEBYSCORE', KEYS[i], 0, cutoff)
    local members = redis.call('ZRANGE', KEYS[i], 0, -1)
    if #members > 0 then
        found[#found + 1] = i
        found[#found + 1] = members
    end
end
return found
"""


def _batchable(layer: Any) -> bool:
    try:
        from channels_redis.core import RedisChannelLayer
    except ImportError:  # pragma: no cover - channels-redis is a dependency
        return False
    return type(layer) is RedisChannelLayer and hasattr(layer, "_map_channel_keys_to_connection")


async def _redis_group_send_many(layer: Any, rings: list[tuple[str, dict]]) -> None:
    groups = list(dict.fromkeys(group for group, _ in rings))
    by_connection: dict[int, list[str]] = {}
    for group in groups:
        by_connection.setdefault(layer.consistent_hash(group), []).append(group)
    now = time.time()
    channels: dict[str, list[str]] = dict.fromkeys(groups, [])
    for index, names in by_connection.items():
        found = await layer.connection(index).eval(
            _READ_GROUPS, len(names), *(layer._group_key(group) for group in names), int(now) - layer.group_expiry)
        for k in range(0, len(found), 2):
            channels[names[int(found[k]) - 1]] = [name.decode("utf8") for name in found[k + 1]]
    appends: dict[int, list[tuple[bytes, bytes, int, float]]] = {}
    per_inbox: dict[bytes, int] = {}
    for group, event in rings:
        if not channels[group]:
            continue
        to_keys, messages, capacities = layer._map_channel_keys_to_connection(channels[group],
                                                                              {**event, "group": group})
        for index, keys in to_keys.items():
            for key in keys:
                # increasing scores per inbox: it hears one batch's messages in ring order
                per_inbox[key] = step = per_inbox.get(key, -1) + 1
                appends.setdefault(index, []).append((key, messages[key], capacities[key], now + step * 1e-6))
    for index, entries in appends.items():
        keys = [key for key, _, _, _ in entries]
        args = [m for _, m, _, _ in entries] + [c for _, _, c, _ in entries] + [repr(s) for _, _, _, s in entries]
        over = await layer.connection(index).eval(_APPEND_MANY, len(keys), *keys, *args, repr(now), int(layer.expiry))
        if over:
            log.info("%s of %s inboxes over capacity for groups %s", over, len(keys), groups)


RECEIVE_BATCH = 200  # doorbells a node takes off its inbox per Redis call


async def receive_many(layer: Any, channel: str) -> list[dict]:
    """The doorbells waiting on a node's `channel` (a plain channel name, not a `!` one), waiting for at
    least one. On channels-redis, one ZPOPMIN takes up to RECEIVE_BATCH at once (BZPOPMIN when none wait):
    its own `receive` costs two Redis calls and a task per message (a backup set for at-least-once delivery,
    which doorbells — hints, recovered by seq — do not need). A doorbell that cannot be read (past the
    layer's encryption TTL) is dropped and logged. Redis errors propagate. Other layers: one `receive`."""
    if not _batchable(layer) or "!" in channel:
        return [await layer.receive(channel)]
    key = layer.prefix + channel
    connection = layer.connection(layer.consistent_hash(channel))
    popped = await connection.zpopmin(key, RECEIVE_BATCH)
    if not popped:
        found = await connection.bzpopmin(key, timeout=layer.brpop_timeout)
        if found is None:
            return []
        popped = [(found[1], found[2])]
    events = []
    for content, _score in popped:
        try:
            event = layer.deserialize(content)
        except Exception:
            log.warning("a doorbell on %s could not be read; dropped (recovered by seq)", channel, exc_info=True)
            continue
        event.pop("__asgi_channel__", None)
        events.append(event)
    return events


async def change_groups(layer: Any, channel: str, changes: list[tuple[bool, str]]) -> None:
    """Join (True) or leave (False) several groups with one channel, as `group_add` / `group_discard` would,
    in one Redis round trip per shard on channels-redis (a reconnect storm joined two groups per socket, each
    `group_add` two round trips on a pooled connection of its own: thousands at once exhausted the pool)."""
    if not _batchable(layer):
        for join, group in changes:
            await (layer.group_add if join else layer.group_discard)(group, channel)
        return
    by_connection: dict[int, list[tuple[bool, str]]] = {}
    for join, group in changes:
        assert layer.require_valid_group_name(group) and layer.require_valid_channel_name(channel)
        by_connection.setdefault(layer.consistent_hash(group), []).append((join, group))
    for index, mine in by_connection.items():
        pipe = layer.connection(index).pipeline(transaction=False)
        for join, group in mine:
            key = layer._group_key(group)
            if join:
                pipe.zadd(key, {channel: time.time()})
                pipe.expire(key, layer.group_expiry)
            else:
                pipe.zrem(key, channel)
        await pipe.execute()


@contextlib.contextmanager
def deferred_rings() -> Iterator[list[list[tuple[str, dict]]]]:
    """Collect the rings made inside (in this context, including a sync_to_async thread it starts) instead of
    sending them, so a consumer does not fan out from its database thread."""
    collected: list[list[tuple[str, dict]]] = []
    token = _deferred.set(collected)
    try:
        yield collected
    finally:
        _deferred.reset(token)


async def send_deferred(collected: list[list[tuple[str, dict]]]) -> None:
    """Send collected rings from the event loop, one `ring_many` call's batch after the previous one's."""
    layer = get_channel_layer()
    if layer is None:
        return
    for rings in collected:
        await _send_all(layer, rings)


def ring_on_commit(group: str, event: dict) -> None:
    on_commit_batched("realtime.ring", ring_many, (group, event))


# --- batching after-commit work -------------------------------------------------------------------------


class _CommitBatch:
    """One `transaction.on_commit` callback carrying the items buffered under it.

    Django runs it after COMMIT, or drops it on rollback (a whole transaction, or a savepoint that was open
    when it was registered) — and its items with it, since they live on it and nowhere else.
    """

    __slots__ = ("__qualname__", "name", "flush", "items", "done")

    def __init__(self, name: str, flush: Callable[[list], None]) -> None:
        self.__qualname__ = f"on_commit_batched[{name}]"  # Django's robust-callback logging reads it
        self.name, self.flush, self.items, self.done = name, flush, [], False

    def __call__(self) -> None:
        self.done = True  # a later transaction, or a test re-running captured callbacks, starts a new batch
        items, self.items = self.items, []
        if items:
            self.flush(items)


def on_commit_batched(name: str, flush: Callable[[list], None], item: Any, *, using: str | None = None) -> None:
    """Like `transaction.on_commit(lambda: flush([item]))`, but the items of one transaction share one call.

    The item joins a pending batch of the same `name` when that batch is still registered on this connection
    (Django removes callbacks of a rolled-back savepoint from its list, and empties the list at commit or
    rollback) and every savepoint open now was open when the batch was registered — then the batch is
    discarded exactly when this item must be. Otherwise a new batch is registered. So a transaction that
    writes all its items at one savepoint level (or deeper levels first) makes one `flush` call; items
    written in a savepoint opened after the batch get their own batch. Outside a transaction (autocommit)
    `flush([item])` runs at once, as `on_commit` would.
    """
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        transaction.on_commit(lambda: flush([item]), using=using, robust=True)
        return
    open_now = {sid for sid in connection.savepoint_ids if sid is not None}
    for sids, func, *_ in reversed(connection.run_on_commit):
        if isinstance(func, _CommitBatch) and func.name == name and not func.done and open_now <= sids:
            func.items.append(item)
            return
    batch = _CommitBatch(name, flush)
    batch.items.append(item)
    transaction.on_commit(batch, using=using, robust=True)
