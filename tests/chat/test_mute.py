"""A mute is stored once (notifications' ConversationMute): chat's GraphQL shows it, send honours it, and the
migration that dropped chat's copy carried every mute over."""

import datetime as dt

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext

from backend.chat import selectors, services
from backend.chat.models import Membership
from backend.core import clock
from backend.notifications import services as notification_services
from backend.notifications.models import ConversationMute, Notification

from .conftest import gid, new_user, token_for

MUTED = """query { myConversations(first: 50) { edges { node { id muted } } } }"""
ONE = """query($id: ID!) { conversation(id: $id) { muted } }"""
MUTE = """mutation($c: ID!, $m: Boolean!) { muteConversation(conversationId: $c, muted: $m) {
  conversation { muted } errors { code } } }"""


def _muted_by_id(gql, token) -> dict[str, bool]:
    edges = gql(MUTED, token=token)["data"]["myConversations"]["edges"]
    return {e["node"]["id"]: e["node"]["muted"] for e in edges}


@pytest.mark.django_db
def test_graphql_shows_the_one_record_of_mutes_without_a_query_per_conversation(gql, django_assert_num_queries):
    me = new_user("Me")
    friends = [new_user(f"F{i}") for i in range(8)]
    conversations = [services.open_direct_conversation(user=me, other_user_id=f.pk) for f in friends]
    token = token_for(me)
    # the mutation writes notifications' record, and the payload reads it back
    answer = gql(MUTE, {"c": gid("Conversation", conversations[0].pk), "m": True}, token=token)
    assert answer["data"]["muteConversation"] == {"conversation": {"muted": True}, "errors": []}
    assert ConversationMute.objects.filter(user=me, conversation_id=conversations[0].pk).exists()
    # a mute for a while, recorded by notifications directly, is the same truth
    notification_services.set_conversation_muted(user_id=me.pk, conversation_id=conversations[1].pk, muted=True,
                                                 until=clock.now() + dt.timedelta(hours=8))
    # another user's mute of the same conversation is theirs only
    services.set_muted(conversation_id=conversations[2].pk, user=friends[2], muted=True)

    with CaptureQueriesContext(connection) as few:
        shown = _muted_by_id(gql, token)
    assert {c for c, muted in shown.items() if muted} == {gid("Conversation", c.pk) for c in conversations[:2]}
    for friend in (new_user("More 1"), new_user("More 2"), new_user("More 3")):
        services.set_muted(conversation_id=services.open_direct_conversation(user=me, other_user_id=friend.pk).pk,
                           user=me, muted=True)
    with django_assert_num_queries(len(few)):  # three more conversations (muted), not one query more
        assert sum(_muted_by_id(gql, token).values()) == 5

    assert gql(ONE, {"id": gid("Conversation", conversations[1].pk)}, token=token)["data"]["conversation"] == \
        {"muted": True}
    with clock.shifted(dt.timedelta(hours=9)):  # the timed mute ended (tokens do not follow the test clock)
        assert selectors.seat_of(me.pk, conversations[1].pk).is_muted is False
    answer = gql(MUTE, {"c": gid("Conversation", conversations[0].pk), "m": False}, token=token)
    assert answer["data"]["muteConversation"]["conversation"] == {"muted": False}
    assert not ConversationMute.objects.filter(user=me, conversation_id=conversations[0].pk).exists()


@pytest.mark.django_db
def test_send_skips_members_by_the_same_record_and_a_rejoin_starts_unmuted():
    ada, bob, cyd = new_user("Ada"), new_user("Bob"), new_user("Cyd")
    group = services.create_group(owner=ada, title="G", member_ids=[bob.pk, cyd.pk])
    # Bob mutes for an hour through notifications (no chat call at all): send honours it
    notification_services.set_conversation_muted(user_id=bob.pk, conversation_id=group.pk, muted=True,
                                                 until=clock.now() + dt.timedelta(hours=1))
    services.send_message(conversation_id=group.pk, sender=ada, client_msg_id="m1", text="one")
    assert list(Notification.objects.filter(event="chat.message").values_list("recipient_id", flat=True)) == [cyd.pk]
    with clock.shifted(dt.timedelta(hours=2)):
        services.send_message(conversation_id=group.pk, sender=ada, client_msg_id="m2", text="two")
    assert Notification.objects.filter(event="chat.message", recipient=bob).count() == 1

    services.set_muted(conversation_id=group.pk, user=cyd, muted=True)
    services.leave_conversation(conversation_id=group.pk, user=cyd)
    services.add_members(conversation_id=group.pk, actor=ada, user_ids=[cyd.pk])
    assert not ConversationMute.objects.filter(user=cyd, conversation_id=group.pk).exists()
    services.send_message(conversation_id=group.pk, sender=ada, client_msg_id="m3", text="welcome back")
    assert [n.body for n in Notification.objects.filter(event="chat.message", recipient=cyd)] == ["welcome back", "two", "one"]


@pytest.mark.django_db(transaction=True)
def test_migration_carries_every_mute_over_to_the_one_record():
    ada, bob = new_user("Ada"), new_user("Bob")
    before, after = [("chat", "0001_initial")], [("chat", "0002_missed_push_seq_and_mute_stored_once")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        OldConversation, OldSeat = old.get_model("chat", "Conversation"), old.get_model("chat", "Membership")
        talk = OldConversation.objects.create(kind="group", title="T", last_seq=7)
        OldSeat.objects.create(conversation=talk, user_id=ada.pk, muted=True)
        OldSeat.objects.create(conversation=talk, user_id=bob.pk, muted=False)
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(after)
        # Going back to chat 0001 also unapplied every app that depends on chat (advisors, payments, ...):
        # bring the whole schema forward again so later tests find their tables.
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert list(ConversationMute.objects.values_list("user_id", "conversation_id")) == [(ada.pk, talk.pk)]
    # old unread messages are not pushed as "missed" by the first sweep after the deploy
    assert set(Membership.objects.values_list("missed_push_seq", flat=True)) == {7}
