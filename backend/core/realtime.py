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
import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterator
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger("quanzi.realtime")

RING_CONCURRENCY = 32  # group_sends in flight at once: below the Redis pool's limit (MaxConnectionsError past it)
_deferred: contextvars.ContextVar[list | None] = contextvars.ContextVar("deferred_rings", default=None)


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def device_group(device_id: int) -> str:
    return f"device.{device_id}"


def ring_now(group: str, event: dict) -> None:
    ring_many([(group, event)])


def ring_many(rings: list[tuple[str, dict]]) -> None:
    """Send several rings in one event-loop hop. Failures are logged, never raised: a lost doorbell is
    recovered by the client's resume, and a write must never fail because of one.

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
        async_to_sync(_send_all)(layer, rings)
    except Exception:
        log.warning("doorbells to %s failed", sorted({group for group, _ in rings}), exc_info=True)


async def _send_all(layer: Any, rings: list[tuple[str, dict]]) -> None:
    by_group: dict[str, list[dict]] = {}
    for group, event in rings:
        by_group.setdefault(group, []).append(event)
    gate = asyncio.Semaphore(RING_CONCURRENCY)

    async def send_group(group: str, events: list[dict]) -> None:
        async with gate:
            for event in events:  # in order within a group: a socket hears one user's frames as they were written
                try:
                    await layer.group_send(group, event)
                except Exception:
                    log.warning("doorbell to %s failed", group, exc_info=True)

    await asyncio.gather(*(send_group(group, events) for group, events in by_group.items()))


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
