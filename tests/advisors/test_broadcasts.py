"""Broadcasts: targeting (tier, circle, list; a manager only reaches their own customers), the per-user
frequency cap, unsubscribed users skipped, delivery and read counts, idempotent delivery."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backend.accounts.ids import user_gid
from backend.advisors import services
from backend.advisors.models import Broadcast, BroadcastDelivery, CustomerRecord
from backend.chat import services as chat_services
from backend.core.errors import NotFound, ValidationFailed
from backend.core.ids import encode_id
from tests.chat.conftest import token_for

from .conftest import assign, new_manager, new_user, nodes_of

pytestmark = pytest.mark.django_db

SEND = """mutation($a: ID!, $t: BroadcastTarget!, $tier: CustomerTier, $circle: ID, $users: [ID!]) {
  sendBroadcast(serviceAccountId: $a, text: "新品上线", target: $t, tier: $tier, circleConversationId: $circle,
                userIds: $users) {
    broadcast { id audienceCount deliveredCount readCount cappedCount unsubscribedCount status }
    errors { code field } } }"""
REPORT = "query { myBroadcasts { edges { node { deliveredCount readCount } } } }"


@pytest.fixture
def offers(db):
    return services.create_service_account(slug="offers", name="Wealth offers", category="marketing")


@pytest.fixture
def ops_user(db):
    return new_user("Ops", is_staff=True)


def send(gql, token, account, **variables):
    return gql(SEND, {"a": encode_id("ServiceAccount", account.pk), **variables}, token=token)["data"][
        "sendBroadcast"]


def test_tier_broadcast_reaches_that_tier_and_counts_reads(gql, offers, ops_user, django_capture_on_commit_callbacks):
    ann, bob, cyd = new_user("Ann"), new_user("Bob"), new_user("Cyd")
    CustomerRecord.objects.create(customer=ann, tier="core")
    CustomerRecord.objects.create(customer=bob, tier="core")
    CustomerRecord.objects.create(customer=cyd, tier="ordinary")
    with django_capture_on_commit_callbacks(execute=True):
        result = send(gql, token_for(ops_user), offers, t="TIER", tier="CORE")
    assert result["errors"] == []
    assert set(BroadcastDelivery.objects.values_list("user_id", flat=True)) == {ann.pk, bob.pk}
    delivery = BroadcastDelivery.objects.get(user=ann)
    chat_services.mark_read(conversation_id=delivery.conversation_id, user=ann, seq=delivery.seq)
    report = nodes_of(gql(REPORT, token=token_for(ops_user))["data"]["myBroadcasts"])
    assert report == [{"deliveredCount": 2, "readCount": 1}]
    assert Broadcast.objects.get().status == "sent"
    with CaptureQueriesContext(connection) as one:
        gql(REPORT, token=token_for(ops_user))
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            send(gql, token_for(ops_user), offers, t="TIER", tier="CORE")
    with CaptureQueriesContext(connection) as four:
        assert len(nodes_of(gql(REPORT, token=token_for(ops_user))["data"]["myBroadcasts"])) == 4
    assert len(four.captured_queries) == len(one.captured_queries)  # read counts in the list query: no N+1


def test_manager_broadcast_reaches_only_their_own_customers(gql, offers, django_capture_on_commit_callbacks):
    mia, max_ = new_manager("Mia"), new_manager("Max")
    ann, bob, cyd = new_user("Ann"), new_user("Bob"), new_user("Cyd")
    assign(ann, mia)
    assign(bob, mia)
    assign(cyd, max_)
    with django_capture_on_commit_callbacks(execute=True):
        result = send(gql, token_for(mia), offers, t="LIST", users=[user_gid(u) for u in (ann, cyd)])
    assert result["errors"] == []
    assert list(BroadcastDelivery.objects.values_list("user_id", flat=True)) == [ann.pk]
    assert Broadcast.objects.get().audience_count == 1
    # customers cannot broadcast at all
    assert send(gql, token_for(ann), offers, t="TIER", tier="CORE")["errors"] == [
        {"code": "NOT_A_CLIENT_MANAGER", "field": None}]


def test_circle_broadcast_uses_the_circle_conversations_members(offers, ops_user):
    ann, bob, cyd = new_user("Ann"), new_user("Bob"), new_user("Cyd")
    circle = chat_services.create_circle_conversation(circle_id=7, title="清华2012", owner_id=ann.pk,
                                                      member_ids=[bob.pk])
    broadcast = services.create_broadcast(sender=ops_user, account=offers, text="校友专享", target="circle",
                                          circle_conversation_id=circle.pk)
    services.deliver_broadcast(broadcast_id=broadcast.pk)
    assert set(BroadcastDelivery.objects.values_list("user_id", flat=True)) == {ann.pk, bob.pk}
    direct = chat_services.open_direct_conversation(user=ann, other_user_id=cyd.pk)
    with pytest.raises(NotFound):  # not a circle conversation
        services.create_broadcast(sender=ops_user, account=offers, text="x", target="circle",
                                  circle_conversation_id=direct.pk)


def test_frequency_cap_unsubscribed_and_rerun(settings, offers, ops_user):
    settings.QUANZI_ADVISORS = {"BROADCAST_CAP": 2}
    ann, bob, cyd = new_user("Ann"), new_user("Bob"), new_user("Cyd")
    services.post_notice(account=offers, user_id=cyd.pk, key="hello", text="hello")
    services.unsubscribe(user=cyd, account=offers)
    everyone = [ann.pk, bob.pk, cyd.pk]

    def broadcast(ids):
        b = services.create_broadcast(sender=ops_user, account=offers, text="offer", target="list", user_ids=ids)
        return services.deliver_broadcast(broadcast_id=b.pk)

    first = broadcast(everyone)
    assert (first.delivered_count, first.unsubscribed_count, first.capped_count) == (2, 1, 0)
    second = broadcast([ann.pk])
    assert second.delivered_count == 1
    third = broadcast(everyone)  # Ann has had 2 this week: capped; Bob 1: delivered
    assert (third.delivered_count, third.capped_count, third.unsubscribed_count) == (1, 1, 1)
    assert set(BroadcastDelivery.objects.filter(broadcast=third).values_list("user_id", flat=True)) == {bob.pk}
    again = services.deliver_broadcast(broadcast_id=third.pk)  # a retried task sends nothing twice
    assert again.delivered_count == 1 and BroadcastDelivery.objects.filter(user=bob).count() == 2


def test_security_account_cannot_broadcast(ops_user):
    security = services.create_service_account(slug="security", name="Security", category="security")
    with pytest.raises(ValidationFailed) as err:
        services.create_broadcast(sender=ops_user, account=security, text="x", target="tier", tier="core")
    assert err.value.code == "INVALID_SENDER"
