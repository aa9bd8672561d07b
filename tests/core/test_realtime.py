"""`core.realtime`: the doorbell, and `on_commit_batched`, which gives each transaction one after-commit call
for all its items and drops what a rollback (of the transaction or of a savepoint) drops."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from backend.core import realtime

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def flushed():
    calls: list[list] = []
    return calls


def add(flushed, item):
    realtime.on_commit_batched("test", flushed.append, item)


def test_items_of_one_transaction_are_flushed_once_after_commit(flushed):
    with transaction.atomic():
        for item in "abc":
            add(flushed, item)
        assert flushed == []
    assert flushed == [["a", "b", "c"]]


def test_a_savepoint_opened_after_the_batch_gets_its_own(flushed):
    with transaction.atomic():
        add(flushed, "a")
        with transaction.atomic():  # its items must be droppable without "a": a batch of their own
            add(flushed, "b")
        add(flushed, "c")  # the savepoint is released: "c" may join either batch; it joins the newest
    assert flushed == [["a"], ["b", "c"]]


def test_items_written_deeper_first_share_the_outer_batch(flushed):
    with transaction.atomic():
        with transaction.atomic():
            add(flushed, "inner")
        add(flushed, "outer")
    assert flushed == [["inner", "outer"]]


def test_rollback_flushes_nothing_and_the_next_transaction_starts_empty(flushed):
    with pytest.raises(RuntimeError), transaction.atomic():
        add(flushed, "lost")
        raise RuntimeError
    with transaction.atomic():
        add(flushed, "kept")
    assert flushed == [["kept"]]


def test_a_rolled_back_savepoint_drops_only_its_items(flushed):
    with transaction.atomic():
        add(flushed, "a")
        with pytest.raises(RuntimeError), transaction.atomic():
            add(flushed, "lost")
            raise RuntimeError
        add(flushed, "b")
    assert flushed == [["a", "b"]]


def test_a_rolled_back_savepoint_that_started_the_batch_drops_it(flushed):
    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():
            add(flushed, "lost")
            raise RuntimeError
        add(flushed, "kept")
    assert flushed == [["kept"]]


def test_a_rolled_back_outer_block_drops_what_its_released_savepoints_wrote(flushed):
    with pytest.raises(RuntimeError), transaction.atomic():
        with transaction.atomic():
            add(flushed, "lost")
        raise RuntimeError
    assert flushed == []


def test_names_batch_separately(flushed):
    other: list[list] = []
    with transaction.atomic():
        add(flushed, 1)
        realtime.on_commit_batched("other", other.append, 2)
        add(flushed, 3)
    assert flushed == [[1, 3]] and other == [[2]]


def test_autocommit_flushes_at_once(flushed):
    add(flushed, "now")
    assert flushed == [["now"]]


@pytest.mark.django_db(transaction=False)
def test_captured_callbacks_run_again_start_a_new_batch(flushed, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        add(flushed, 1)
    with django_capture_on_commit_callbacks(execute=True):
        add(flushed, 2)
    assert flushed == [[1], [2]]


def test_ring_on_commit_reaches_the_group_after_commit():
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(realtime.user_group(7), channel)
    with transaction.atomic():
        realtime.ring_on_commit(realtime.user_group(7), {"type": "client.event", "n": 1})
        realtime.ring_on_commit(realtime.device_group(3), {"type": "client.event", "n": 0})
        realtime.ring_on_commit(realtime.user_group(7), {"type": "client.event", "n": 2})
    assert [async_to_sync(layer.receive)(channel)["n"] for _ in range(2)] == [1, 2]
    realtime.ring_now(realtime.user_group(7), {"type": "client.event", "n": 3})
    assert async_to_sync(layer.receive)(channel)["n"] == 3


def test_rings_from_plain_threads_share_one_loop_and_arrive_in_order():
    """A request or worker thread rings through the process's one ring loop: no thread (and no channel-layer
    connection pool) per ring, several threads at once, and each group hears its rings in order."""
    import threading

    layer = get_channel_layer()
    channels = [async_to_sync(layer.new_channel)() for _ in range(4)]
    for n, channel in enumerate(channels):
        async_to_sync(layer.group_add)(realtime.user_group(100 + n), channel)
    realtime.ring_now(realtime.user_group(100), {"type": "client.event", "n": -1})  # the loop starts once
    assert async_to_sync(layer.receive)(channels[0])["n"] == -1
    threads_before = threading.active_count()

    def rings(n: int) -> None:
        for i in range(5):
            realtime.ring_now(realtime.user_group(100 + n), {"type": "client.event", "n": i})

    workers = [threading.Thread(target=rings, args=(n,)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    # asgiref's own per-call threads (the in-memory layer's path) end only once their executor is collected:
    # give them that moment on a loaded machine, then nothing may be left behind by 20 rings
    import gc
    import time

    deadline = time.monotonic() + 5
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        gc.collect()
        time.sleep(0.05)
    assert threading.active_count() <= threads_before  # no thread left behind by 20 rings
    for channel in channels:
        assert [async_to_sync(layer.receive)(channel)["n"] for _ in range(5)] == [0, 1, 2, 3, 4]


def test_a_plain_thread_does_not_wait_for_redis_and_rings_queued_meanwhile_leave_together(
        monkeypatch, settings, require_redis):
    """channels-redis: the ringing thread only queues (here the ring loop is held busy, and ringing still
    returns); what was queued meanwhile goes out in one read of the groups (a group nobody listens to among
    them), each group's rings in order."""
    import threading
    import uuid

    from backend import settings as project_settings

    config = dict(project_settings.CHANNEL_LAYERS["default"]["CONFIG"], prefix=f"test-ring-{uuid.uuid4().hex[:8]}")
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": config}}
    layer = get_channel_layer()
    assert realtime._batchable(layer)
    channels = [async_to_sync(layer.new_channel)() for _ in range(3)]
    for n, channel in enumerate(channels):
        async_to_sync(layer.group_add)(realtime.user_group(300 + n), channel)

    async def received() -> list[list[int]]:  # one event loop for every read (channels-redis keeps state per loop)
        return [[(await layer.receive(channel))["n"] for _ in range(count)]
                for channel, count in zip(channels, (5, 4, 4), strict=True)]

    realtime.ring_now(realtime.user_group(300), {"type": "client.event", "n": -1})  # the loop is running
    realtime.flush_rings()

    reads: list[int] = []
    real_send = realtime._redis_group_send_many

    async def counting(layer, rings):
        reads.append(len(rings))
        await real_send(layer, rings)

    monkeypatch.setattr(realtime, "_redis_group_send_many", counting)
    release = threading.Event()
    realtime._ring_loop().call_soon_threadsafe(release.wait, 10)  # the loop is busy until released
    rang = threading.Event()

    def ring_all() -> None:
        for i in range(4):
            for n in range(3):
                realtime.ring_now(realtime.user_group(300 + n), {"type": "client.event", "n": i})
            realtime.ring_now(realtime.user_group(399), {"type": "client.event", "n": i})  # nobody listens
        rang.set()

    threading.Thread(target=ring_all).start()
    assert rang.wait(5)  # sixteen rings queued while the loop could send none of them
    release.set()
    realtime.flush_rings()
    assert reads == [16]
    assert async_to_sync(received)() == [[-1, 0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]]
