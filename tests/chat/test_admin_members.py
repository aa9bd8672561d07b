"""Adding someone to a conversation from the back office announces them and does not open the old history."""

from __future__ import annotations

import pytest

from backend.chat import selectors, services
from backend.chat.models import Conversation, Membership, Message
from backend.core.models import AdminAuditEntry

pytestmark = pytest.mark.django_db


def change(client, conversation: Conversation, **data):
    form = {"kind": conversation.kind, "title": conversation.title, "owner": conversation.owner_id or "",
            "memberships-TOTAL_FORMS": conversation.memberships.count(),
            "memberships-INITIAL_FORMS": conversation.memberships.count(),
            "memberships-MIN_NUM_FORMS": 0, "memberships-MAX_NUM_FORMS": 1000, **data}
    for n, seat in enumerate(conversation.memberships.order_by("id")):
        form[f"memberships-{n}-id"] = seat.pk
        form[f"memberships-{n}-conversation"] = conversation.pk
    return client.post(f"/admin/chat/conversation/{conversation.pk}/change/", form)


def test_staff_add_a_member_with_a_system_message_and_history_from_the_join(ops, users):
    client, staff = ops
    ada, bob, cyd, _ = users
    group = services.create_group(owner=ada, title="Family", member_ids=[bob.pk])
    services.send_message(conversation_id=group.pk, sender=ada, client_msg_id="m1", text="secret before cyd")
    response = change(client, group, **{"add_members": str(cyd.pk)})
    assert response.status_code == 302, response.content.decode()[:3000]
    seat = Membership.objects.get(conversation=group, user=cyd, left_at__isnull=True)
    newest = Message.objects.filter(conversation=group).order_by("-seq").first()
    assert newest.kind == "system" and "members_added" in newest.data and "Cyd" in newest.body
    visible = list(selectors.visible_messages(seat).values_list("seq", flat=True))
    assert visible == [newest.seq]  # the announcement, not the earlier history
    assert AdminAuditEntry.objects.filter(action_name="add_members", actor_id=staff.pk,
                                          after={"added_user_ids": [cyd.pk]}).exists()


def test_the_membership_inline_cannot_seat_anyone_silently(ops, users):
    client, _ = ops
    ada, bob, cyd, _ = users
    group = services.create_group(owner=ada, title="Family", member_ids=[bob.pk])
    before = Membership.objects.filter(conversation=group).count()
    change(client, group, **{"memberships-TOTAL_FORMS": before + 1, f"memberships-{before}-user": cyd.pk,
                             f"memberships-{before}-role": "member", f"memberships-{before}-conversation": group.pk})
    assert not Membership.objects.filter(conversation=group, user=cyd).exists()


def test_members_are_added_from_the_admin_only_to_groups(ops, users):
    client, _ = ops
    ada, bob, cyd, _ = users
    direct = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    response = change(client, direct, **{"add_members": str(cyd.pk)})
    assert response.status_code == 200  # the form is shown again with the error
    assert not Membership.objects.filter(conversation=direct, user=cyd).exists()
