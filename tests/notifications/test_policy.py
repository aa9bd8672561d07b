"""Whether and when a push goes out: live sockets, mutes, kinds, quiet hours, collapsing bursts."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.core.management import call_command
from django.db import transaction

from backend.accounts.models import User
from backend.accounts.services import DeviceInfo, _start_session
from backend.asgi import application
from backend.core import clock
from backend.notifications import services
from backend.notifications.models import Notification

from .conftest import make_user, reload

State = Notification.PushState
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def notify_committed(user_id: int, **fields) -> Notification:
    values = {"kind": "message", "event": "chat.message", "title": "Ada", "body": "hi", "conversation_id": 7}
    values.update(fields)
    with transaction.atomic():
        notification = services.notify(recipient_id=user_id, **values)
    notification.refresh_from_db()
    return notification


# --- live sockets (Zulip's rule) ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_no_push_while_a_socket_is_live_and_a_push_once_it_closes(fcm):
    @database_sync_to_async
    def signed_in():
        user = User.objects.create_user("+8613600000001", display_name="Bo")
        return _start_session(user, DeviceInfo(platform="android", fcm_token="tok-live"))

    session = await signed_in()
    ws = WebsocketCommunicator(application, "/ws/")
    assert (await ws.connect())[0]
    await ws.send_json_to({"type": "auth", "token": session.access_token})
    assert (await ws.receive_json_from())["type"] == "auth.ok"

    first = await database_sync_to_async(notify_committed)(session.user.pk)
    frame = await ws.receive_json_from(timeout=5)  # the open app hears it on the socket instead
    assert frame["type"] == "notification"
    assert frame["notification"]["id"] == services.encode_id("Notification", first.pk)
    assert frame["notification"]["kind"] == "message"
    first = await database_sync_to_async(reload)(first)
    assert (first.push_state, first.push_reason) == (State.SKIPPED, "online")
    assert fcm.messages == []

    # Reading it (on this or another device) tells every socket, so badges agree.
    await database_sync_to_async(services.mark_read)(recipient_id=session.user.pk, notification_ids=[first.pk])
    read = await ws.receive_json_from(timeout=5)
    assert read == {"type": "notification.read", "ids": [frame["notification"]["id"]], "unread_count": 0}

    await ws.disconnect()
    second = await database_sync_to_async(notify_committed)(session.user.pk, conversation_id=8)
    second = await database_sync_to_async(reload)(second)
    assert second.push_state == State.SENT
    [message] = fcm.delivered_to("tok-live")
    assert message["data"]["notification_id"] == services.encode_id("Notification", second.pk)


# --- preferences and mutes ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_muted_kind_and_default_off_marketing_are_not_pushed(fcm, django_capture_on_commit_callbacks):
    user = make_user(("android", "tok-kinds"))
    services.update_preferences(user_id=user.pk, money=False)
    with django_capture_on_commit_callbacks(execute=True):
        money = notify_committed(user.pk, kind="money", event="wallet.x", conversation_id=None)
        marketing = notify_committed(user.pk, kind="marketing", event="promo", conversation_id=None)
        security = notify_committed(user.pk, kind="system", event="accounts.new_login", conversation_id=None)
    assert (reload(money).push_state, money.push_reason) == (State.SKIPPED, "muted_kind")
    assert (reload(marketing).push_state, marketing.push_reason) == (State.SKIPPED, "muted_kind")
    assert reload(security).push_state == State.SENT  # security notices cannot be muted
    assert [m["data"]["kind"] for m in fcm.messages] == ["system"]
    # Muting stops the push, not the inbox.
    assert set(services.selectors.inbox_of(user.pk).values_list("pk", flat=True)) == {money.pk, marketing.pk,
                                                                                     security.pk}

    services.update_preferences(user_id=user.pk, marketing=True)
    with django_capture_on_commit_callbacks(execute=True):
        notify_committed(user.pk, kind="marketing", event="promo", conversation_id=None)
    assert [m["data"]["kind"] for m in fcm.messages] == ["system", "marketing"]


@pytest.mark.django_db
def test_muted_conversation_is_not_pushed_until_unmuted_or_the_mute_ends(fcm, django_capture_on_commit_callbacks):
    user = make_user(("android", "tok-mute"))
    services.set_conversation_muted(user_id=user.pk, conversation_id=7, muted=True)
    services.set_conversation_muted(user_id=user.pk, conversation_id=9, muted=True,
                                    until=clock.now() + dt.timedelta(hours=8))
    with django_capture_on_commit_callbacks(execute=True):
        muted = notify_committed(user.pk, conversation_id=7)
        other = notify_committed(user.pk, conversation_id=8)
        for_a_while = notify_committed(user.pk, conversation_id=9)
    assert (reload(muted).push_state, muted.push_reason) == (State.SKIPPED, "muted_conversation")
    assert reload(for_a_while).push_reason == "muted_conversation"
    assert reload(other).push_state == State.SENT
    assert services.selectors.muted_conversation_ids(user.pk, [7, 8, 9]) == {7, 9}

    services.set_conversation_muted(user_id=user.pk, conversation_id=7, muted=False)
    with clock.shifted(dt.timedelta(hours=9)), django_capture_on_commit_callbacks(execute=True):
        notify_committed(user.pk, conversation_id=7)
        notify_committed(user.pk, conversation_id=9)
    assert sorted(m["data"]["conversation_id"] for m in fcm.messages) == ["7", "8", "9"]


@pytest.mark.django_db
def test_mute_input_is_checked():
    user = make_user()
    with pytest.raises(services.ValidationFailed) as bad_id:
        services.set_conversation_muted(user_id=user.pk, conversation_id=0, muted=True)
    assert bad_id.value.code == "INVALID_CONVERSATION"
    with pytest.raises(services.ValidationFailed) as past:
        services.set_conversation_muted(user_id=user.pk, conversation_id=3, muted=True,
                                        until=clock.now() - dt.timedelta(minutes=1))
    assert past.value.code == "INVALID_MUTE_UNTIL"
    assert services.selectors.muted_conversation_ids(user.pk) == set()


@pytest.mark.django_db
def test_quiet_hours_hold_pushes_until_they_end(fcm, django_capture_on_commit_callbacks):
    user = make_user(("android", "tok-quiet"))
    services.update_preferences(user_id=user.pk, quiet_hours=services.QuietHours(dt.time(22), dt.time(7)),
                                timezone="Asia/Shanghai")
    late = dt.datetime(2026, 11, 23, 23, 30, tzinfo=SHANGHAI)
    with clock.frozen_at(late), django_capture_on_commit_callbacks(execute=True):
        held = notify_committed(user.pk)
        security = notify_committed(user.pk, kind="system", event="accounts.new_login", conversation_id=None)
    held = reload(held)
    assert (held.push_state, held.push_reason) == (State.PENDING, "quiet_hours")
    assert held.push_next_attempt_at == dt.datetime(2026, 11, 24, 7, 0, tzinfo=SHANGHAI)
    assert reload(security).push_state == State.SENT  # security notices ignore quiet hours
    assert [m["data"]["kind"] for m in fcm.messages] == ["system"]

    call_command("run_due_jobs", at="2026-11-24T06:59:00+08:00", job=["notifications.sweep_pushes"])
    assert len(fcm.messages) == 1
    call_command("run_due_jobs", at="2026-11-24T07:00:30+08:00", job=["notifications.sweep_pushes"])
    assert reload(held).push_state == State.SENT
    assert [m["data"]["kind"] for m in fcm.messages] == ["system", "message"]


def test_quiet_hours_within_one_day_and_across_midnight():
    prefs = services.NotificationPreferences(quiet_start=dt.time(22), quiet_end=dt.time(7), timezone="Asia/Shanghai")
    at = lambda h, m=0: dt.datetime(2026, 11, 23, h, m, tzinfo=SHANGHAI)  # noqa: E731
    assert services.quiet_hours_end(prefs, at(21, 59)) is None
    assert services.quiet_hours_end(prefs, at(22)) == dt.datetime(2026, 11, 24, 7, tzinfo=SHANGHAI)
    assert services.quiet_hours_end(prefs, at(3)) == at(7)
    assert services.quiet_hours_end(prefs, at(7)) is None
    prefs.quiet_start, prefs.quiet_end = dt.time(13), dt.time(14, 30)
    assert services.quiet_hours_end(prefs, at(13, 10)) == at(14, 30)
    assert services.quiet_hours_end(prefs, at(15)) is None
    # The user's own time zone decides: 13:10 in Shanghai is 05:10 UTC.
    assert services.quiet_hours_end(prefs, at(13, 10).astimezone(dt.UTC)) == at(14, 30)


# --- collapsing bursts -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_burst_committed_together_is_one_push(fcm, django_capture_on_commit_callbacks):
    user = make_user(("android", "tok-burst"))
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        rows = [services.notify(recipient_id=user.pk, kind="message", event="chat.message", title="Ada",
                                body=f"msg {i}", conversation_id=42) for i in range(10)]
    [message] = fcm.delivered_to("tok-burst")
    assert message["notification"]["title"] == "10 条新消息 10 new messages"
    assert message["android"]["notification"]["notification_count"] == 10
    assert message["data"]["notification_id"] == services.encode_id("Notification", rows[-1].pk)
    states = [reload(row).push_state for row in rows]
    assert states == [State.SKIPPED] * 9 + [State.SENT]


@pytest.mark.django_db
def test_ten_messages_in_a_minute_make_one_notification_on_the_phone(fcm, django_capture_on_commit_callbacks):
    user = make_user(("android", "tok-minute"))
    start = clock.now()
    rows = []
    for i in range(10):
        with clock.frozen_at(start + dt.timedelta(seconds=5 * i)), django_capture_on_commit_callbacks(execute=True):
            rows.append(notify_committed(user.pk, conversation_id=42, body=f"msg {i}"))
    # The first message is pushed at once; the other nine wait for the end of the collapse window.
    assert len(fcm.messages) == 1
    assert {reload(r).push_reason for r in rows[1:]} == {"collapsing"}
    assert reload(rows[1]).push_next_attempt_at == start + dt.timedelta(seconds=60)

    with clock.frozen_at(start + dt.timedelta(seconds=61)):
        services.sweep_pending_pushes()
    first, summary = fcm.delivered_to("tok-minute")
    # Same collapse key and tag: the phone replaces the first notification with "10 new messages".
    assert summary["android"]["collapse_key"] == first["android"]["collapse_key"] == "conversation:42"
    assert summary["android"]["notification"]["tag"] == "conversation:42"
    assert summary["android"]["notification"]["notification_count"] == 10
    assert [reload(r).push_state for r in rows] == [State.SENT] + [State.SKIPPED] * 8 + [State.SENT]

    with clock.frozen_at(start + dt.timedelta(minutes=5)):
        assert services.sweep_pending_pushes() == {}
    assert len(fcm.messages) == 2


@pytest.mark.django_db
def test_read_before_the_push_is_due_means_no_push(fcm, django_capture_on_commit_callbacks):
    user = make_user(("android", "tok-read"))
    start = clock.now()
    with clock.frozen_at(start), django_capture_on_commit_callbacks(execute=True):
        notify_committed(user.pk, conversation_id=5)
    with clock.frozen_at(start + dt.timedelta(seconds=10)), django_capture_on_commit_callbacks(execute=True):
        later = notify_committed(user.pk, conversation_id=5)
    assert services.mark_conversation_read(recipient_id=user.pk, conversation_id=5) == 2
    with clock.frozen_at(start + dt.timedelta(seconds=70)):
        services.sweep_pending_pushes()
    assert (reload(later).push_state, later.push_reason) == (State.SKIPPED, "read")
    assert len(fcm.messages) == 1


@pytest.mark.django_db
def test_a_recalled_message_loses_its_text_and_is_never_pushed_later(fcm, django_capture_on_commit_callbacks):
    user = make_user(("android", "tok-recall"))
    services.update_preferences(user_id=user.pk, quiet_hours=services.QuietHours(dt.time(0), dt.time(23, 59)))
    with clock.frozen_at(dt.datetime(2026, 11, 23, 12, tzinfo=SHANGHAI)), django_capture_on_commit_callbacks(
        execute=True
    ):
        kept = notify_committed(user.pk, conversation_id=3, body="keep", payload={"seq": 1})
        recalled = notify_committed(user.pk, conversation_id=4, body="oops", payload={"seq": 2})
    assert services.retract(conversation_id=4, event="chat.message", payload_match={"seq": 2}) == 1
    assert (reload(recalled).body, recalled.push_state, recalled.push_reason) == ("", State.SKIPPED, "retracted")
    assert reload(kept).body == "keep" and kept.push_state == State.PENDING
    with clock.frozen_at(dt.datetime(2026, 11, 23, 23, 59, 30, tzinfo=SHANGHAI)):
        services.sweep_pending_pushes()
    assert [m["data"]["conversation_id"] for m in fcm.messages] == ["3"]
