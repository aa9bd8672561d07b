"""Chat rules at the service level: seqs, idempotency, membership, roles, recall/edit windows, push rows."""

import datetime as dt

import pytest
from django.conf import settings as django_settings
from django.db import connection

from backend.chat import events, services
from backend.chat.models import Conversation, Membership, Message, MessageRevision
from backend.core import clock, presence
from backend.core.errors import DomainError, NotFound, RateLimited
from backend.notifications.models import Notification

from .conftest import new_user

pytestmark = pytest.mark.django_db


def send(conversation, sender, text="hi", cid=None, **kw):
    send.n = getattr(send, "n", 0) + 1
    return services.send_message(conversation_id=conversation.pk, sender=sender,
                                 client_msg_id=cid or f"c{send.n}", text=text, **kw)


def codes(fn, *args, **kwargs) -> str:
    with pytest.raises(DomainError) as err:
        fn(*args, **kwargs)
    return err.value.code


def test_direct_conversation_is_created_once_per_pair(users):
    ada, bob, *_ = users
    first = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    again = services.open_direct_conversation(user=bob, other_user_id=ada.pk)
    assert first.pk == again.pk and first.kind == "direct"
    assert Conversation.objects.filter(kind="direct").count() == 1
    assert codes(services.open_direct_conversation, user=ada, other_user_id=ada.pk) == "INVALID_MEMBER"
    assert codes(services.open_direct_conversation, user=ada, other_user_id=999999) == "NOT_FOUND"


def test_seqs_are_gapless_and_resending_returns_the_original(users):
    ada, bob, *_ = users
    conversation = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    seqs = [send(conversation, ada if i % 2 else bob, cid=f"m{i}").message.seq for i in range(10)]
    assert seqs == list(range(1, 11))
    again = send(conversation, bob, text="different text", cid="m0")
    assert not again.created and again.message.seq == 1 and again.message.body == "hi"
    assert Message.objects.filter(conversation=conversation).count() == 10
    # the same client id in another conversation is a conflict, not a silent second message
    other = services.create_group(owner=bob, title="g", member_ids=[ada.pk])
    assert codes(send, other, bob, cid="m0") == "CLIENT_MSG_ID_REUSED"


def test_bad_input_gets_stable_codes_and_changes_nothing(users):
    ada, bob, cyd, _ = users
    conversation = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    before = Message.objects.count()
    assert codes(send, conversation, ada, text="   ") == "EMPTY_MESSAGE"
    assert codes(send, conversation, ada, text="x" * 5001) == "MESSAGE_TOO_LONG"
    assert codes(services.send_message, conversation_id=conversation.pk, sender=ada, client_msg_id="",
                 text="x") == "INVALID_CLIENT_MSG_ID"
    assert codes(send, conversation, ada, kind="image", attachment={"url": "http://plain"}) == "INVALID_ATTACHMENT"
    assert codes(send, conversation, ada, kind="card") == "INVALID_KIND"
    assert codes(send, conversation, ada, reply_to_seq=5) == "INVALID_REPLY"
    assert codes(send, conversation, ada, mention_ids=[cyd.pk]) == "INVALID_MENTIONS"
    assert codes(send, conversation, cyd) == "NOT_FOUND"  # non-members learn nothing
    assert Message.objects.count() == before
    assert Conversation.objects.get(pk=conversation.pk).last_seq == 0


def test_image_reply_and_mentions(users):
    ada, bob, *_ = users
    group = services.create_group(owner=ada, title="Trip", member_ids=[bob.pk])
    first = send(group, ada, text="hello @Bob", mention_ids=[bob.pk]).message
    image = send(group, bob, kind="image", text="", reply_to_seq=first.seq,
                 attachment={"url": "https://cdn.example/p.jpg", "width": 640, "height": 480}).message
    assert image.reply_to_seq == first.seq and first.mentions == [bob.pk]
    assert services.preview_of(image) == "[Image]"


def test_group_roles_membership_and_system_messages(users):
    ada, bob, cyd, dan = users
    group = services.create_group(owner=ada, title="Family", member_ids=[bob.pk])
    services.add_members(conversation_id=group.pk, actor=bob, user_ids=[cyd.pk, dan.pk])
    assert codes(services.remove_member, conversation_id=group.pk, actor=bob, user_id=cyd.pk) == "NOT_ALLOWED"
    services.set_member_role(conversation_id=group.pk, actor=ada, user_id=bob.pk, role="admin")
    services.remove_member(conversation_id=group.pk, actor=bob, user_id=cyd.pk)
    assert codes(services.remove_member, conversation_id=group.pk, actor=bob, user_id=ada.pk) == "NOT_ALLOWED"
    assert codes(services.rename_conversation, conversation_id=group.pk, actor=dan, title="x") == "NOT_ALLOWED"
    services.rename_conversation(conversation_id=group.pk, actor=bob, title="Family 2")
    services.leave_conversation(conversation_id=group.pk, user=ada)  # the owner leaves: bob (admin) inherits
    group.refresh_from_db()
    assert group.owner_id == bob.pk and group.title == "Family 2" and group.member_count == 2
    events = [m.data and __import__("json").loads(m.data)["system"]["event"]
              for m in Message.objects.filter(conversation=group).order_by("seq")]
    assert events == ["group_created", "members_added", "role_changed", "member_removed", "renamed", "member_left"]
    # a removed member cannot send and cannot even tell the group exists
    assert codes(send, group, cyd) == "NOT_FOUND"
    # re-added, they only see messages from their return on
    services.add_members(conversation_id=group.pk, actor=dan, user_ids=[cyd.pk])
    seat = Membership.objects.get(conversation=group, user=cyd)
    assert seat.visible_from_seq == group.last_seq + 1


def test_group_size_limit(users, settings):
    ada, bob, cyd, dan = users
    settings.QUANZI_CHAT = {"GROUP_MAX_MEMBERS": 3}
    assert codes(services.create_group, owner=ada, title="big", member_ids=[bob.pk, cyd.pk, dan.pk]) == "GROUP_FULL"
    group = services.create_group(owner=ada, title="ok", member_ids=[bob.pk, cyd.pk])
    assert codes(services.add_members, conversation_id=group.pk, actor=ada, user_ids=[dan.pk]) == "GROUP_FULL"


def test_direct_and_circle_chats_refuse_member_management(users):
    ada, bob, cyd, _ = users
    direct = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    assert codes(services.add_members, conversation_id=direct.pk, actor=ada, user_ids=[cyd.pk]) == \
        "NOT_SUPPORTED_FOR_KIND"
    circle = services.create_circle_conversation(circle_id=7, title="Tsinghua 2012", owner_id=ada.pk,
                                                 member_ids=[bob.pk])
    assert services.create_circle_conversation(circle_id=7, title="Tsinghua 2012", owner_id=ada.pk).pk == circle.pk
    assert codes(services.add_members, conversation_id=circle.pk, actor=ada, user_ids=[cyd.pk]) == "MANAGED_BY_CIRCLE"
    services.add_members(conversation_id=circle.pk, actor=None, user_ids=[cyd.pk])  # the circles app
    assert circle.memberships.filter(left_at__isnull=True).count() == 3


def test_service_accounts_are_one_way_and_cards_cannot_be_edited_or_recalled(users):
    ada, bank, *_ = users
    notices = services.open_service_conversation(service_account_id=bank.pk, subscriber_id=ada.pk,
                                                 title="Credit card")
    assert codes(send, notices, ada) == "READ_ONLY_CONVERSATION"
    card = services.post_card(conversation_id=notices.pk, sender=bank, client_msg_id="bill-2026-01",
                              card={"kind": "statement", "statement_id": "S1", "title": "January statement"})
    assert card.message.card_kind == "statement" and services.preview_of(card.message) == "January statement"
    assert codes(services.edit_message, message_id=card.message.pk, user=bank, text="x") == "CARD_NOT_EDITABLE"
    assert codes(services.recall_message, message_id=card.message.pk, user=bank) == "CARD_NOT_RECALLABLE"
    assert codes(services.post_card, conversation_id=notices.pk, sender=bank, client_msg_id="x",
                 card={"no": "kind"}) == "INVALID_CARD"


def test_advisor_conversation_needs_a_client_manager(users):
    ada, bob, *_ = users
    assert codes(services.open_advisor_conversation, customer_id=ada.pk, manager_id=bob.pk) == "NOT_A_CLIENT_MANAGER"
    manager = new_user("Manager Li", role="client_manager")
    conversation = services.open_advisor_conversation(customer_id=ada.pk, manager_id=manager.pk)
    assert conversation.kind == "advisor"
    assert services.open_advisor_conversation(customer_id=ada.pk, manager_id=manager.pk).pk == conversation.pk


def test_edit_keeps_history_within_the_window(users):
    ada, bob, *_ = users
    conversation = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    message = send(conversation, ada, text="see you at 7").message
    assert codes(services.edit_message, message_id=message.pk, user=bob, text="x") == "NOT_ALLOWED"
    services.edit_message(message_id=message.pk, user=ada, text="see you at 8")
    message.refresh_from_db()
    assert message.body == "see you at 8" and message.edited_at is not None
    assert [r.body for r in MessageRevision.objects.filter(message=message)] == ["see you at 7"]
    with clock.shifted(dt.timedelta(minutes=11)):
        assert codes(services.edit_message, message_id=message.pk, user=ada, text="9") == "EDIT_WINDOW_PASSED"


def test_recall_leaves_a_tombstone_and_erases_the_body_everywhere(users):
    ada, bob, *_ = users
    conversation = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    message = send(conversation, ada, text="wrong chat, sorry").message
    services.edit_message(message_id=message.pk, user=ada, text="wrong chat!")
    assert Notification.objects.filter(recipient=bob, conversation_id=conversation.pk).get().body == "wrong chat, sorry"
    services.recall_message(message_id=message.pk, user=ada)
    message.refresh_from_db()
    assert message.is_recalled and message.body == "" and message.data == "" and message.seq == 1
    assert not MessageRevision.objects.filter(message=message).exists()
    assert Notification.objects.get(recipient=bob, conversation_id=conversation.pk).body == ""
    assert codes(services.recall_message, message_id=message.pk, user=ada) == "MESSAGE_RECALLED"
    late = send(conversation, ada, text="x").message
    with clock.shifted(dt.timedelta(minutes=3)):
        assert codes(services.recall_message, message_id=late.pk, user=ada) == "RECALL_WINDOW_PASSED"


def test_push_rows_only_for_idle_unmuted_members(users):
    ada, bob, cyd, dan = users
    group = services.create_group(owner=ada, title="Hiking", member_ids=[bob.pk, cyd.pk, dan.pk])
    presence.socket_alive(bob.pk, "bob-socket")  # bob has a live socket
    services.set_muted(conversation_id=group.pk, user=dan, muted=True)
    message = send(group, ada, text="Saturday 8am at the gate").message
    rows = Notification.objects.filter(event="chat.message")
    assert [r.recipient_id for r in rows] == [cyd.pk]
    row = rows.get()
    assert row.title == "Hiking" and row.body == "Saturday 8am at the gate" and row.collapse_key == f"conv-{group.pk}"
    assert row.payload == {"conversation_id": events.conversation_gid(group.pk), "seq": message.seq}
    assert row.conversation_id == group.pk and row.kind == "message"


def test_read_marker_and_unread_counts(users):
    from backend.chat import selectors

    ada, bob, *_ = users
    conversation = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    for _ in range(5):
        send(conversation, ada)
    seat = selectors.seat_of(bob.pk, conversation.pk)
    assert selectors.unread_count(seat) == 5 and selectors.unread_count(selectors.seat_of(ada.pk, conversation.pk)) == 0
    services.mark_read(conversation_id=conversation.pk, user=bob, seq=3)
    assert selectors.unread_count(selectors.seat_of(bob.pk, conversation.pk)) == 2
    services.mark_read(conversation_id=conversation.pk, user=bob, seq=1)  # never moves back
    services.mark_read(conversation_id=conversation.pk, user=bob, seq=99)  # capped at the newest
    assert selectors.seat_of(bob.pk, conversation.pk).last_read_seq == 5
    assert codes(services.mark_read, conversation_id=conversation.pk, user=bob, seq=-1) == "INVALID_SEQ"


def test_send_rate_limit_per_user(users, settings):
    ada, bob, *_ = users
    settings.QUANZI_CHAT = {"SEND_LIMIT": 3}
    conversation = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    for i in range(3):
        send(conversation, ada, cid=f"r{i}")
    with pytest.raises(RateLimited):
        send(conversation, ada, cid="r3")
    assert send(conversation, ada, cid="r0").created is False  # a resend is not a new send
    send(conversation, bob, cid="b0")  # other users are unaffected


def test_message_bodies_are_ciphertext_in_the_table(users):
    ada, bob, *_ = users
    conversation = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    send(conversation, ada, text="my card pin is not 1234")
    send(conversation, ada, kind="file", text="", attachment={"url": "https://cdn.example/secret-plan.pdf",
                                                               "name": "secret-plan.pdf"})
    with connection.cursor() as cursor:
        cursor.execute("SELECT body, data FROM chat_message")
        rows = cursor.fetchall()
    raw = " ".join(v for row in rows for v in row)
    assert "1234" not in raw and "secret-plan" not in raw and "cdn.example" not in raw
    key_id = django_settings.QUANZI_KEYS.split("=", 1)[0]  # sealed under the first configured key
    assert all(v.startswith(f"{key_id}:") for row in rows for v in row if v)


def test_not_found_for_unknown_conversation(users):
    with pytest.raises(NotFound):
        services.send_message(conversation_id=123456, sender=users[0], client_msg_id="z", text="x")
