"""After-commit work is batched per transaction: every notification a transaction writes reaches its user's
sockets through one doorbell hop and its push through one Celery message — and nothing of a rolled-back
transaction or savepoint goes out."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction

from backend.accounts.services import DeviceInfo, _start_session
from backend.asgi import application
from backend.core import realtime
from backend.core.ids import encode_id
from backend.notifications import services, tasks

from .conftest import make_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture(autouse=True)
def _fresh_channel_layer():
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def after_commit(monkeypatch):
    """Counts doorbell hops (async_to_sync calls of the doorbell) and push enqueues (with their ids)."""
    seen = {"hops": 0, "enqueued": []}
    real_async_to_sync, real_delay = realtime.async_to_sync, tasks.deliver_pushes.delay

    def counting_async_to_sync(fn):
        seen["hops"] += 1
        return real_async_to_sync(fn)

    def counting_delay(ids):
        seen["enqueued"].append(list(ids))
        return real_delay(ids)

    monkeypatch.setattr(realtime, "async_to_sync", counting_async_to_sync)
    monkeypatch.setattr(tasks.deliver_pushes, "delay", counting_delay)
    return seen


@database_sync_to_async
def users_with_tokens(count):
    users = [make_user(name=f"User{n}") for n in range(count)]
    return users, [_start_session(user, DeviceInfo()).access_token for user in users]


async def open_socket(token):
    ws = WebsocketCommunicator(application, "/ws/")
    connected, _ = await ws.connect()
    assert connected
    await ws.send_json_to({"type": "auth", "token": token})
    assert (await ws.receive_json_from(timeout=3))["type"] == "auth.ok"
    return ws


async def notifications_on(ws, count):
    out = []
    while len(out) < count:
        frame = await ws.receive_json_from(timeout=3)
        if frame["type"] == "notification":
            out.append(frame["notification"])
    return out


async def nothing_more_on(ws):
    while not await ws.receive_nothing(timeout=0.3):
        frame = await ws.receive_json_from(timeout=1)
        assert frame["type"] != "notification", frame


def gids(rows):
    return [encode_id("Notification", row.pk) for row in rows]


async def test_one_transaction_is_one_doorbell_hop_and_one_enqueue(after_commit):
    (ada, bob, cyd), (ta, tb, _) = await users_with_tokens(3)
    wa, wb = await open_socket(ta), await open_socket(tb)
    after_commit["hops"] = 0

    @database_sync_to_async
    def transfer_like():
        with transaction.atomic():
            rows = [
                services.notify(recipient_id=ada.pk, kind="money", event="wallet.x", title="a1"),
                services.notify(recipient_id=bob.pk, kind="money", event="wallet.x", title="b1"),
                services.notify(recipient_id=ada.pk, kind="money", event="wallet.x", title="a2"),
                services.notify(recipient_id=cyd.pk, kind="money", event="wallet.x", title="c1"),
            ]
            assert after_commit == {"hops": 0, "enqueued": []}  # nothing before COMMIT
        return rows

    a1, b1, a2, c1 = await transfer_like()
    assert after_commit["hops"] == 1
    assert after_commit["enqueued"] == [[a1.pk, b1.pk, a2.pk, c1.pk]]
    assert [n["id"] for n in await notifications_on(wa, 2)] == gids([a1, a2])  # in order, to the right user
    assert [n["id"] for n in await notifications_on(wb, 1)] == gids([b1])
    await nothing_more_on(wa)
    await nothing_more_on(wb)
    for row in (a1, b1, a2, c1):  # the batch task ran (eagerly) for every row: each is settled, once
        await database_sync_to_async(row.refresh_from_db)()
        assert row.push_state != "pending", row.push_state
    await wa.disconnect()
    await wb.disconnect()


async def test_a_rolled_back_transaction_sends_nothing_and_leaves_nothing_behind(after_commit):
    (ada, bob), (ta, tb) = await users_with_tokens(2)
    wa, wb = await open_socket(ta), await open_socket(tb)
    after_commit["hops"] = 0

    @database_sync_to_async
    def failed_then_next():
        with pytest.raises(RuntimeError), transaction.atomic():
            services.notify(recipient_id=ada.pk, kind="money", event="wallet.x", title="lost")
            services.notify(recipient_id=bob.pk, kind="money", event="wallet.x", title="lost")
            raise RuntimeError("the transfer failed")
        assert after_commit == {"hops": 0, "enqueued": []}
        with transaction.atomic():  # the next transaction starts with an empty batch
            return services.notify(recipient_id=bob.pk, kind="money", event="wallet.x", title="kept")

    kept = await failed_then_next()
    assert after_commit["hops"] == 1 and after_commit["enqueued"] == [[kept.pk]]
    assert [n["id"] for n in await notifications_on(wb, 1)] == gids([kept])
    await nothing_more_on(wb)
    await nothing_more_on(wa)
    await wa.disconnect()
    await wb.disconnect()


async def test_a_rolled_back_savepoint_sends_nothing_of_its_own(after_commit):
    (ada, bob), (ta, tb) = await users_with_tokens(2)
    wa, wb = await open_socket(ta), await open_socket(tb)
    after_commit["hops"] = 0

    @database_sync_to_async
    def with_a_failed_step():
        with transaction.atomic():
            first = services.notify(recipient_id=ada.pk, kind="money", event="wallet.x", title="first")
            with pytest.raises(RuntimeError), transaction.atomic():
                services.notify(recipient_id=bob.pk, kind="money", event="wallet.x", title="rolled back")
                services.notify(recipient_id=ada.pk, kind="money", event="wallet.x", title="rolled back")
                raise RuntimeError("one step failed")
            last = services.notify(recipient_id=ada.pk, kind="money", event="wallet.x", title="last")
        return first, last

    first, last = await with_a_failed_step()
    assert after_commit["hops"] == 1 and after_commit["enqueued"] == [[first.pk, last.pk]]
    assert [n["id"] for n in await notifications_on(wa, 2)] == gids([first, last])
    await nothing_more_on(wa)
    await nothing_more_on(wb)
    await wa.disconnect()
    await wb.disconnect()


async def test_outside_a_transaction_each_notification_goes_out_at_once(after_commit):
    (ada,), (ta,) = await users_with_tokens(1)
    wa = await open_socket(ta)
    after_commit["hops"] = 0
    row = await database_sync_to_async(services.notify)(recipient_id=ada.pk, kind="money", event="x", title="t")
    assert after_commit["hops"] == 1 and after_commit["enqueued"] == [[row.pk]]
    assert [n["id"] for n in await notifications_on(wa, 1)] == gids([row])
    await wa.disconnect()


async def test_a_big_fan_out_is_one_doorbell_hop_and_enqueues_in_chunks(after_commit):
    @database_sync_to_async
    def fan_out():
        users = [make_user(name=f"Member{n}") for n in range(services.PUSH_TASK_BATCH + 3)]
        after_commit["hops"] = 0
        with transaction.atomic():
            return [services.notify(recipient_id=u.pk, kind="circle", event="circle.x", title="t") for u in users]

    rows = await fan_out()
    assert after_commit["hops"] == 1
    assert after_commit["enqueued"] == [[r.pk for r in rows[: services.PUSH_TASK_BATCH]],
                                        [r.pk for r in rows[services.PUSH_TASK_BATCH:]]]
