"""Missed-message pushes: a message that arrived while the member's socket was live (so no push then) and is
still unread minutes after the socket closed is pushed once, per conversation, by the periodic scan."""

import datetime as dt

import pytest
from channels.db import database_sync_to_async
from django.core.management import call_command

from backend.chat import services
from backend.core import clock, presence
from backend.notifications import services as notification_services
from backend.notifications.models import Notification
from backend.notifications.services import QuietHours
from tests.conftest import race
from tests.notifications.conftest import _fcm_server, eager_tasks, fcm  # noqa: F401  (fixtures)

from .conftest import gid, new_user, token_for
from .test_socket_chat import messages, open_socket

JOB = ["chat.push_missed_messages"]
State = Notification.PushState


def run_scan(after: str) -> None:
    """The periodic job, as `manage.py run_due_jobs --advance <after>` runs it."""
    call_command("run_due_jobs", advance=after, job=JOB)


def missed_rows(user):
    return list(Notification.objects.filter(recipient=user, event="chat.message").order_by("id"))


def send(conversation, sender, text, cid):
    return services.send_message(conversation_id=conversation.pk, sender=sender, client_msg_id=cid, text=text).message


@pytest.fixture
def chat(db):
    """Ada writes to Bob while Bob's app is open; then Bob closes it."""
    ada, bob = new_user("Ada"), new_user("Bob")
    conversation = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    presence.socket_alive(bob.pk, "bob-phone")
    return ada, bob, conversation


def test_unread_after_the_socket_closed_is_pushed_once_per_conversation(chat):
    ada, bob, conversation = chat
    send(conversation, ada, "lunch?", "m1")
    latest = send(conversation, ada, "at noon", "m2")
    assert missed_rows(bob) == []  # his app was open: no push then
    run_scan("10m")
    assert missed_rows(bob) == []  # still open
    presence.socket_closed(bob.pk, "bob-phone")
    run_scan("1m")
    assert missed_rows(bob) == []  # closed a minute ago: he may still read it
    run_scan("3m")
    [row] = missed_rows(bob)  # both messages, one push: the newest, collapsed with the conversation's
    assert row.payload == {"conversation_id": gid("Conversation", conversation.pk), "seq": latest.seq}
    assert (row.kind, row.title, row.body, row.collapse_key) == ("message", "Ada", "at noon",
                                                                 f"conv-{conversation.pk}")
    run_scan("4m")
    run_scan("1h")
    assert len(missed_rows(bob)) == 1  # a second scan pushes nothing again


def test_reading_before_the_delay_means_no_push(chat):
    ada, bob, conversation = chat
    message = send(conversation, ada, "seen it?", "m1")
    presence.socket_closed(bob.pk, "bob-phone")
    services.mark_read(conversation_id=conversation.pk, user=bob, seq=message.seq)  # on another device
    run_scan("5m")
    assert missed_rows(bob) == []


def test_a_muted_conversation_and_switched_off_message_pushes_get_none(chat):
    ada, bob, conversation = chat
    cyd = new_user("Cyd")
    other = services.open_direct_conversation(user=cyd, other_user_id=bob.pk)
    services.set_muted(conversation_id=conversation.pk, user=bob, muted=True)
    send(conversation, ada, "muted", "m1")
    presence.socket_closed(bob.pk, "bob-phone")
    run_scan("5m")
    assert missed_rows(bob) == []
    services.set_muted(conversation_id=conversation.pk, user=bob, muted=False)
    run_scan("6m")
    assert missed_rows(bob) == []  # settled while muted: unmuting later does not replay old messages
    presence.socket_alive(bob.pk, "bob-phone")
    notification_services.update_preferences(user_id=bob.pk, messages=False)
    send(other, cyd, "prefs off", "c1")
    presence.socket_closed(bob.pk, "bob-phone")
    run_scan("5m")
    assert missed_rows(bob) == []


def test_quiet_hours_defer_the_push_and_reading_meanwhile_cancels_it(chat):
    ada, bob, conversation = chat
    now = clock.now().astimezone(dt.UTC)
    start = (now - dt.timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (now + dt.timedelta(hours=2)).time().replace(second=0, microsecond=0)
    notification_services.update_preferences(user_id=bob.pk, quiet_hours=QuietHours(start, end), timezone="UTC")
    message = send(conversation, ada, "late night", "m1")
    presence.socket_closed(bob.pk, "bob-phone")
    run_scan("3m")
    [row] = missed_rows(bob)
    with clock.shifted(dt.timedelta(minutes=3)):
        result = notification_services.deliver_push(notification_id=row.pk)
    assert (result.state, result.reason) == (State.PENDING, "quiet_hours")
    services.mark_read(conversation_id=conversation.pk, user=bob, seq=message.seq)
    with clock.shifted(dt.timedelta(hours=3)):
        assert notification_services.deliver_push(notification_id=row.pk).reason == "read"


def test_messages_after_the_socket_closed_keep_their_own_push_and_are_not_pushed_twice(chat):
    ada, bob, conversation = chat
    presence.socket_closed(bob.pk, "bob-phone")
    with clock.shifted(dt.timedelta(seconds=5)):
        send(conversation, ada, "while away", "m1")
    assert len(missed_rows(bob)) == 1  # the ordinary push of an idle member
    run_scan("5m")
    assert len(missed_rows(bob)) == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_real_socket_then_one_push_to_the_phone(fcm):  # noqa: F811
    @database_sync_to_async
    def setup():
        ada, bob = new_user("Ada"), new_user("Bob")
        bob.devices.create(platform="android", fcm_token="tok-bob")
        conversation = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
        return ada, bob, conversation, token_for(bob)

    ada, bob, conversation, token = await setup()
    ws = await open_socket(token)
    await database_sync_to_async(send)(conversation, ada, "你在吗", "m1")
    assert [m["body"] for m in await messages(ws, 1)] == ["你在吗"]  # shown live, not read
    await ws.disconnect()
    await database_sync_to_async(run_scan)("1m")

    def chat_pushes():  # signing in on a second device also (rightly) pushes a security notice to the first
        return [m for m in fcm.delivered_to("tok-bob") if m["data"].get("event") == "chat.message"]

    assert chat_pushes() == []
    await database_sync_to_async(run_scan)("2m")
    await database_sync_to_async(run_scan)("3m")
    assert len(chat_pushes()) == 1


@pytest.mark.django_db(transaction=True)
def test_two_scans_racing_push_once(require_postgres):
    ada, bob = new_user("Ada"), new_user("Bob")
    conversations = [services.open_direct_conversation(user=new_user(f"F{i}"), other_user_id=bob.pk)
                     for i in range(5)] + [services.open_direct_conversation(user=ada, other_user_id=bob.pk)]
    presence.socket_alive(bob.pk, "bob-phone")
    for i, conversation in enumerate(conversations):
        sender = conversation.memberships.exclude(user=bob).get().user
        send(conversation, sender, f"hello {i}", f"r{i}")
    presence.socket_closed(bob.pk, "bob-phone")
    later = clock.now() + dt.timedelta(minutes=5)
    results = race(lambda: services.push_missed_messages(now=later), 2)
    assert sum(r["pushed"] for r in results) == 6
    rows = missed_rows(bob)
    assert sorted(r.conversation_id for r in rows) == sorted(c.pk for c in conversations)  # one each
