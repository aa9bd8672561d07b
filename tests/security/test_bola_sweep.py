"""Schema-wide BOLA sweep, generated from the schema.

The inventory is every query field and mutation argument that takes an ID (an `ID`, `[ID]`, or an ID inside an
input object), read from `backend.schema.schema` itself, and every Relay node type (`core.nodes.registered()`).
Each must be in COVERAGE below, as one of:

- PROBE: attacked here. The document is generated from the schema (required arguments filled in, every
  payload field two levels deep asked for), the attacked argument carries the id of Ada's object and then of a
  missing one: Eve (a stranger) and an anonymous caller get the same answer for both, nothing changes, and no
  phone number or name of Ada's shows up. Ada herself, with the same document, gets a different answer than
  for a missing id: the probe reaches the object.
- ELSEWHERE: attacked the same way by a per-app BOLA test, named by module and test (or by the key of that
  module's OPERATIONS table); checked to exist.
- PUBLIC: the id names something anyone signed in may address (a user's public profile, a public campaign),
  with the reason.

A new id-taking field or node type fails `test_every_id_taking_field_and_node_type_is_covered` until it is
put in the table.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass

import pytest

from backend.accounts.models import User
from backend.advisors.models import Product
from backend.core import nodes
from backend.core.ids import encode_id
from backend.payments import services as payments
from backend.schema import schema
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    get_named_type,
    is_non_null_type,
)
from tests.core.test_mutation_payloads import selection
from tests.loans.conftest import circle_with
from tests.loans.conftest import request as loan_request

from .conftest import MISSING_PK, World, build_world, leaks_phone, snapshot
from .test_graphql_bola import _answer

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Probe:
    kind: str  # the key of the victim object in `victims()`
    args: str = ""  # extra literal arguments (GraphQL syntax) so the probe gets past input validation
    owner: str = "ada"  # who may act on the object (the probe's proof that it reaches it)


@dataclass(frozen=True)
class Elsewhere:
    where: str  # "module::test_name" or "module:OPERATIONS[key]"


@dataclass(frozen=True)
class Public:
    reason: str


USERS_ARE_PUBLIC = Public("a user id names a public profile (anyone may look it up by share code or as a "
                          "co-member); what the call may do with it is scoped by the caller's own relations")
CHAT = "tests.security.test_graphql_bola:OPERATIONS"
CIRCLES = "tests.circles.test_bola:OPERATIONS"
SEND = 'idempotencyKey: "bola-sweep-1"'

COVERAGE: dict[str, Probe | Elsewhere | Public] = {
    # --- chat (tests/security/test_graphql_bola.py walks each with garbage ids too)
    "Query.conversation.id": Elsewhere(f"{CHAT}[conversation]"),
    "Query.messages.conversationId": Elsewhere(f"{CHAT}[messages]"),
    "Query.conversationMembers.conversationId": Elsewhere(f"{CHAT}[conversationMembers]"),
    "Mutation.addMembers.conversationId": Elsewhere(f"{CHAT}[addMembers]"),
    "Mutation.addMembers.userIds": USERS_ARE_PUBLIC,
    "Mutation.removeMember.conversationId": Elsewhere(f"{CHAT}[removeMember]"),
    "Mutation.removeMember.userId": USERS_ARE_PUBLIC,
    "Mutation.leaveConversation.conversationId": Elsewhere(f"{CHAT}[leaveConversation]"),
    "Mutation.renameConversation.conversationId": Elsewhere(f"{CHAT}[renameConversation]"),
    "Mutation.setMemberRole.conversationId": Elsewhere(f"{CHAT}[setMemberRole]"),
    "Mutation.setMemberRole.userId": USERS_ARE_PUBLIC,
    "Mutation.muteConversation.conversationId": Elsewhere(f"{CHAT}[muteConversation]"),
    "Mutation.markConversationRead.conversationId": Elsewhere(f"{CHAT}[markConversationRead]"),
    "Mutation.sendMessage.input.conversationId": Elsewhere(f"{CHAT}[sendMessage]"),
    "Mutation.sendMessage.input.mentionIds": USERS_ARE_PUBLIC,
    "Mutation.editMessage.messageId": Elsewhere(f"{CHAT}[editMessage]"),
    "Mutation.recallMessage.messageId": Elsewhere(f"{CHAT}[recallMessage]"),
    "Mutation.revokeDevice.deviceId": Elsewhere(f"{CHAT}[revokeDevice]"),
    "Mutation.markNotificationsRead.ids": Elsewhere(f"{CHAT}[markNotificationsRead]"),
    "Mutation.createGroup.memberIds": USERS_ARE_PUBLIC,
    "Mutation.openDirectConversation.userId": USERS_ARE_PUBLIC,
    "Query.node.id": Elsewhere("tests.core.test_ids_and_nodes::test_node_refetches_my_objects_and_hides_everyone_elses"),
    "Query.nodes.ids": Elsewhere("tests.core.test_ids_and_nodes::test_node_refetches_my_objects_and_hides_everyone_elses"),
    # --- circles (tests/circles/test_bola.py)
    "Query.circle.id": Elsewhere(f"{CIRCLES}[circle]"),
    "Query.circleMembers.circleId": Elsewhere(f"{CIRCLES}[circleMembers]"),
    "Query.circleJoinRequests.circleId": Elsewhere(f"{CIRCLES}[circleJoinRequests]"),
    "Query.trustProfile.circleId": Elsewhere(f"{CIRCLES}[trustProfile]"),
    "Query.trustProfile.userId": USERS_ARE_PUBLIC,
    "Query.circleEvents.circleId": Elsewhere(f"{CIRCLES}[circleEvents]"),
    "Mutation.updateCircle.circleId": Elsewhere(f"{CIRCLES}[updateCircle]"),
    "Mutation.joinCircle.circleId": Elsewhere(f"{CIRCLES}[joinCircle]"),
    "Mutation.leaveCircle.circleId": Elsewhere(f"{CIRCLES}[leaveCircle]"),
    "Mutation.createInviteCode.circleId": Elsewhere(f"{CIRCLES}[createInviteCode]"),
    "Mutation.inviteToCircle.circleId": Elsewhere(f"{CIRCLES}[inviteToCircle]"),
    "Mutation.inviteToCircle.userId": USERS_ARE_PUBLIC,
    "Mutation.removeCircleMember.circleId": Elsewhere(f"{CIRCLES}[removeCircleMember]"),
    "Mutation.removeCircleMember.userId": USERS_ARE_PUBLIC,
    "Mutation.muteCircleMember.circleId": Probe("Circle", "hours: 1"),
    "Mutation.muteCircleMember.userId": USERS_ARE_PUBLIC,
    "Mutation.setCircleMemberRole.circleId": Probe("Circle", "role: ADMIN"),
    "Mutation.setCircleMemberRole.userId": USERS_ARE_PUBLIC,
    "Mutation.vouch.circleId": Elsewhere(f"{CIRCLES}[vouch]"),
    "Mutation.vouch.userId": USERS_ARE_PUBLIC,
    "Mutation.requestVerification.circleId": Elsewhere(f"{CIRCLES}[requestVerification]"),
    "Mutation.confirmVerification.circleId": Probe("Circle", 'code: "123456"'),
    "Mutation.decideVerification.requestId": Elsewhere(f"{CIRCLES}[decideVerification]"),
    "Mutation.acceptCircleInvitation.requestId": Probe("CircleInvitation", owner="bob"),
    "Mutation.decideJoinRequest.requestId": Probe("CircleJoinRequest", "approve: true", owner="bob"),
    "Mutation.createPost.circleId": Elsewhere(f"{CIRCLES}[createPost.circle]"),
    "Mutation.createPost.card.refId": Public("a card shared into a moment is re-read through the sharer's own "
                                             "scope by the app that owns it (loans: tests/loans/test_cards.py)"),
    "Mutation.deletePost.postId": Elsewhere(f"{CIRCLES}[deletePost]"),
    "Mutation.likePost.postId": Elsewhere(f"{CIRCLES}[likePost]"),
    "Mutation.commentOnPost.postId": Elsewhere(f"{CIRCLES}[commentOnPost]"),
    "Mutation.deleteComment.commentId": Elsewhere(f"{CIRCLES}[deleteComment]"),
    "Mutation.reportAbuse.circleId": Elsewhere(f"{CIRCLES}[reportAbuse.circle]"),
    "Mutation.reportAbuse.postId": Elsewhere(f"{CIRCLES}[reportAbuse.post]"),
    "Mutation.reportAbuse.userId": Public("anyone may report a user they met (the report names them to staff "
                                          "only and answers nothing about them)"),
    "Mutation.createCircleEvent.circleId": Elsewhere(f"{CIRCLES}[createCircleEvent]"),
    "Mutation.rsvpEvent.eventId": Elsewhere(f"{CIRCLES}[rsvpEvent]"),
    "Mutation.cancelCircleEvent.eventId": Elsewhere(f"{CIRCLES}[cancelCircleEvent]"),
    "Mutation.markAttendance.eventId": Elsewhere(f"{CIRCLES}[markAttendance]"),
    "Mutation.markAttendance.userId": USERS_ARE_PUBLIC,
    "Mutation.respondFriendRequest.requestId": Elsewhere(f"{CIRCLES}[respondFriendRequest]"),
    "Mutation.sendFriendRequest.userId": USERS_ARE_PUBLIC,
    "Mutation.removeFriend.userId": USERS_ARE_PUBLIC,
    "Mutation.blockUser.userId": USERS_ARE_PUBLIC,
    # --- payments: probed here
    "Query.redPacket.id": Probe("RedPacket"),
    "Query.friendTransfer.id": Probe("FriendTransfer"),
    "Query.aaBill.id": Probe("AaBill"),
    "Query.settleUp.id": Probe("SettleUp"),
    "Query.groupBalances.conversationId": Probe("Conversation"),
    "Mutation.sendRedPacket.conversationId": Probe("Conversation", f"kind: LUCKY, amount: 300, count: 2, {SEND}"),
    "Mutation.grabRedPacket.redPacketId": Probe("RedPacket"),
    "Mutation.sendTransfer.conversationId": Probe("Direct", f"amount: 100, {SEND}"),
    "Mutation.sendTransfer.recipientId": USERS_ARE_PUBLIC,
    "Mutation.acceptTransfer.transferId": Probe("FriendTransfer"),
    "Mutation.declineTransfer.transferId": Probe("FriendTransfer"),
    "Mutation.createAaBill.conversationId": Probe("Conversation", f'title: "x", amount: 300, method: EQUAL, {SEND}'),
    "Mutation.createAaBill.participants.userId": USERS_ARE_PUBLIC,
    "Mutation.payAaShare.shareId": Probe("AaShare"),
    "Mutation.declineAaShare.shareId": Probe("AaShare"),
    "Mutation.markAaSharePaidOffline.shareId": Probe("AaShare"),
    "Mutation.remindAaBill.billId": Probe("AaBill"),
    "Mutation.closeAaBill.billId": Probe("AaBill"),
    "Mutation.cancelAaBill.billId": Probe("AaBill", "refundPaid: true"),
    "Mutation.startSettleUp.conversationId": Probe("Conversation"),
    "Mutation.paySettleUp.settleUpId": Probe("SettleUp"),
    "Mutation.cancelSettleUp.settleUpId": Probe("SettleUp"),
    "Mutation.sendMoney.recipientId": USERS_ARE_PUBLIC,
    # --- loans: probed here (a loan shown in Ada's circle, which Eve is not in)
    "Query.loanRequest.id": Probe("LoanRequest"),
    "Mutation.createLoanRequest.circleIds": Probe(
        "Circle", 'amount: 300000, termMonths: 12, rateBp: 1000, method: EQUAL_INSTALMENT, purpose: "x", '
                  "fundingDays: 7"),
    "Mutation.cancelLoanRequest.loanId": Probe("MyLoan"),
    "Mutation.pledgeToLoan.loanId": Probe("LoanRequest", f"amount: 10000, {SEND}"),
    "Mutation.repayLoan.loanId": Probe("MyLoan", f"amount: 100, {SEND}"),
    # --- campaigns, referrals, advisors: their own BOLA tests
    "Query.myDraws.campaignId": Public("a marketing campaign is public (shown to every eligible customer); the "
                                       "draws listed are the caller's own"),
    "Query.verifyDraw.drawId": Public("a draw's proof (seed hash, seed after the end) is published for anyone "
                                      "to verify: tests/campaigns/test_draws.py"),
    "Mutation.drawLottery.campaignId": Public("a marketing campaign is public; the draw is the caller's own"),
    "Mutation.claimCoupon.couponTypeId": Public("coupon types are offered publicly; claiming makes the caller's "
                                                "own coupon"),
    "Mutation.issueCoupon.couponTypeId": Elsewhere(
        "tests.campaigns.test_coupon_effects::test_issue_coupon_mutation_is_staff_only"),
    "Mutation.issueCoupon.userId": Elsewhere(
        "tests.campaigns.test_coupon_effects::test_issue_coupon_mutation_is_staff_only"),
    "Query.publicDrawList.campaignId": Public("a campaign's draw list is published for anyone to replay and names "
                                              "nobody: tests/campaigns/test_public_draws.py"),
    "Mutation.redeemCoupon.couponId": Elsewhere(
        "tests.campaigns.test_graphql::test_claim_redeem_and_a_strangers_coupon_is_not_found"),
    "Query.myShareCodes.campaignId": Public("a referral campaign is public; the codes listed are the caller's own"),
    "Query.myReferralFunnel.campaignId": Public("a referral campaign is public; the funnel is the caller's own"),
    "Query.staffLeaderboard.campaignId": Elsewhere(
        "tests.referrals.test_graphql::test_staff_leaderboard_is_for_client_managers_only"),
    "Mutation.createShareCode.campaignId": Public("a referral campaign is public; the code made is the caller's"),
    "Mutation.chooseDoublingDay.cardId": Elsewhere(
        "tests.referrals.test_graphql::test_a_strangers_card_is_answered_like_a_missing_one"),
    "Query.customerNotes.customerId": Elsewhere(
        "tests.advisors.test_manager_desk::test_notes_are_for_the_customers_own_manager_only"),
    "Mutation.addCustomerNote.customerId": Elsewhere(
        "tests.advisors.test_manager_desk::test_notes_are_for_the_customers_own_manager_only"),
    "Mutation.setCustomerTags.customerId": Elsewhere(
        "tests.advisors.test_manager_desk::test_another_managers_customers_are_invisible_over_graphql"),
    "Mutation.deleteQuickReply.quickReplyId": Elsewhere(
        "tests.advisors.test_nodes::test_advisors_objects_refetch_for_their_owner_only"),
    "Mutation.sendQuickReply.customerId": Elsewhere(
        "tests.advisors.test_manager_desk::test_quick_replies_and_product_cards_reach_only_my_customers"),
    "Mutation.sendQuickReply.quickReplyId": Elsewhere(
        "tests.advisors.test_manager_desk::test_quick_replies_and_product_cards_reach_only_my_customers"),
    "Mutation.sendProductCard.customerId": Elsewhere(
        "tests.advisors.test_manager_desk::test_quick_replies_and_product_cards_reach_only_my_customers"),
    "Mutation.sendProductCard.productId": Public("the bank's products are a public catalogue"),
    "Mutation.shareProduct.conversationId": Probe("Conversation", 'clientMsgId: "bola-sweep-1"'),
    "Mutation.shareProduct.productId": Public("the bank's products are a public catalogue"),
    "Mutation.subscribeServiceAccount.serviceAccountId": Public("service accounts are public, like WeChat's"),
    "Mutation.unsubscribeServiceAccount.serviceAccountId": Public("service accounts are public, like WeChat's"),
    "Mutation.sendBroadcast.circleConversationId": Elsewhere(
        "tests.advisors.test_broadcasts::test_manager_broadcast_reaches_only_their_own_customers"),
    "Mutation.sendBroadcast.productId": Public("the bank's products are a public catalogue"),
    "Mutation.sendBroadcast.serviceAccountId": Public("service accounts are public, like WeChat's"),
    "Mutation.sendBroadcast.userIds": Elsewhere(
        "tests.advisors.test_broadcasts::test_manager_broadcast_reaches_only_their_own_customers"),
}

# node(id:) for every registered type: refetched by a stranger (null) and an anonymous caller (UNAUTHENTICATED)
# here for the types the world below has; the others in the test that lists them.
NODES_ELSEWHERE = {
    **{t: "tests.referrals.test_graphql::test_my_objects_refetch_by_node_and_strangers_get_null"
       for t in ("ShareCode", "ReferralCampaign", "DoublingCard")},
    **{t: "tests.advisors.test_nodes::test_advisors_objects_refetch_for_their_owner_only"
       for t in ("Product", "ServiceAccount", "QuickReply", "CustomerNote", "Broadcast")},
    **{t: "tests.campaigns.test_nodes::test_campaigns_objects_refetch_for_who_may_see_them"
       for t in ("MarketingCampaign", "CouponType", "Coupon", "LotteryDraw")},
    "LoanPledge": "tests.loans.test_nodes::test_loan_nodes_are_scoped",
    "StatementLine": "tests.core.test_ids_and_nodes::test_node_refetches_my_objects_and_hides_everyone_elses",
    "JournalEntry": "tests.core.test_ids_and_nodes::test_node_refetches_my_objects_and_hides_everyone_elses",
    "Wallet": "tests.core.test_ids_and_nodes::test_node_refetches_my_objects_and_hides_everyone_elses",
    "BankOperation": "tests.core.test_ids_and_nodes::test_node_refetches_my_objects_and_hides_everyone_elses",
}
NODES_PUBLIC = {"User": "a user's public profile (display name, avatar) refetches for anyone signed in"}


# --- the inventory, from the schema -------------------------------------------------------------------------


def id_paths(graphql_type, prefix: str, seen: tuple = ()) -> list[str]:
    named = get_named_type(graphql_type)
    if isinstance(named, GraphQLScalarType) and named.name == "ID":
        return [prefix]
    if isinstance(named, GraphQLInputObjectType) and named.name not in seen:
        return [path for name, field in named.fields.items()
                for path in id_paths(field.type, f"{prefix}.{name}", (*seen, named.name))]
    return []


def id_taking_fields() -> set[str]:
    found = set()
    gql_schema = schema.graphql_schema
    for root in (gql_schema.query_type, gql_schema.mutation_type):
        for name, field in root.fields.items():
            for arg_name, arg in field.args.items():
                found |= {f"{root.name}.{name}.{path}" for path in id_paths(arg.type, arg_name)}
    return found


def test_every_id_taking_field_and_node_type_is_covered():
    inventory = id_taking_fields()
    assert len(inventory) > 80  # the walk sees the whole schema
    assert sorted(inventory - set(COVERAGE)) == [], "an id-taking field nobody attacks: add it to COVERAGE"
    assert sorted(set(COVERAGE) - inventory) == [], "COVERAGE names a field the schema no longer has"
    probed_types = set(VICTIM_NODE_TYPES)
    registered = set(nodes.registered())
    uncovered = registered - probed_types - set(NODES_ELSEWHERE) - set(NODES_PUBLIC)
    assert sorted(uncovered) == [], "a node type nobody refetches as a stranger: add it to VICTIM_NODE_TYPES"
    for where in [c.where for c in COVERAGE.values() if isinstance(c, Elsewhere)] + list(NODES_ELSEWHERE.values()):
        if "::" in where:
            module, test = where.split("::")
            assert callable(getattr(importlib.import_module(module), test, None)), where
        else:
            module, rest = where.split(":")
            table, key = rest.rstrip("]").split("[")
            assert key in getattr(importlib.import_module(module), table), where


# --- generated documents --------------------------------------------------------------------------------------

def literal(graphql_type, path: str, id_for) -> str | None:
    """A valid literal for a required input (None: leave the optional argument out); `id_for(path)` gives the
    id to put at an ID's argument path."""
    if not is_non_null_type(graphql_type):
        return None
    inner = graphql_type.of_type
    if isinstance(inner, GraphQLList):
        item_type = inner.of_type if isinstance(inner.of_type, GraphQLNonNull) else GraphQLNonNull(inner.of_type)
        return f"[{literal(item_type, path, id_for)}]"
    if isinstance(inner, GraphQLInputObjectType):
        parts = [f"{name}: {v}" for name, field in inner.fields.items()
                 if (v := literal(field.type, f"{path}.{name}", id_for)) is not None]
        return "{" + ", ".join(parts) + "}"
    if isinstance(inner, GraphQLEnumType):
        return next(iter(inner.values))
    return {"ID": json.dumps(id_for(path)), "String": '"x"', "Int": "1", "Float": "1.0", "Fen": "100",
            "Boolean": "true", "DateTime": '"2031-01-01T00:00:00+00:00"', "Date": '"2031-01-01"'}[inner.name]


def document_for(key: str, probe: Probe, gid: str, others: dict[str, str]) -> str:
    """The field named by `key` with `gid` in the attacked argument; another required id gets the object
    `others` names for its argument (a user: Bob, Ada's friend and co-member), else `gid` too."""
    root_name, field_name, *path = key.split(".")
    attacked = ".".join(path)

    def id_for(arg_path: str) -> str:
        return gid if arg_path == attacked else others.get(arg_path.split(".")[-1], gid)

    root = schema.graphql_schema.get_type(root_name)
    field = root.fields[field_name]
    given = {part.split(":")[0].strip() for part in probe.args.split(",") if part.strip()}
    args = [probe.args] if probe.args else []
    for arg_name, arg in field.args.items():
        if arg_name in given:
            continue
        if arg_name == path[0]:
            arg_type = arg.type if is_non_null_type(arg.type) else GraphQLNonNull(arg.type)
            args.append(f"{arg_name}: {literal(arg_type, arg_name, id_for)}")
        elif (value := literal(arg.type, arg_name, id_for)) is not None:
            args.append(f"{arg_name}: {value}")
    operation = "query" if root_name == "Query" else "mutation"
    arguments = f"({', '.join(args)})" if args else ""
    return f"{operation} {{ {field_name}{arguments} {selection(field.type, 2)} }}"


# --- the victim's world ---------------------------------------------------------------------------------------

VICTIM_NODE_TYPES = ("Conversation", "Message", "Device", "Notification", "RedPacket", "FriendTransfer", "AaBill",
                     "SettleUp", "Circle", "CircleJoinRequest", "VerificationRequest", "FriendRequest", "Post",
                     "PostComment", "CircleEvent", "LoanRequest", "MyLoan")
GID_TYPE = {"Direct": "Conversation", "CircleInvitation": "CircleJoinRequest"}


def victims(w: World) -> dict[str, int]:
    """One object of each kind, Ada's (or one she is in), none of them visible to Eve."""
    import datetime as dt

    from backend.circles import services as circles
    from backend.core import clock

    User.objects.filter(pk=w.ada.pk).update(kyc_level=2)
    w.ada.refresh_from_db()
    packet, _ = payments.send_red_packet(sender=w.ada, conversation_id=w.group, kind="lucky", amount=300, count=2,
                                         idempotency_key="sweep-packet")
    transfer, _ = payments.send_transfer(sender=w.ada, conversation_id=w.direct, amount=100,
                                         idempotency_key="sweep-transfer")
    bill, _ = payments.create_bill(creator=w.ada, conversation_id=w.group, title="咖啡", amount=200, method="equal",
                                   participants=[w.ada.pk, w.bob.pk], idempotency_key="sweep-bill")
    settle = payments.start_settlement(user=w.ada, conversation_id=w.group)
    bill2, _ = payments.create_bill(creator=w.bob, conversation_id=w.group, title="午饭", amount=200, method="equal",
                                    participants=[w.ada.pk], idempotency_key="sweep-bill-2")
    circle = circles.create_circle(owner=w.ada, kind="alumni", name="Hidden", visibility="hidden",
                                   join_policy="approval", requires_verification=True,
                                   verification_domain="tsinghua.edu.cn")
    invitation = circles.invite_user(actor=w.ada, circle_id=circle.pk, user_id=w.bob.pk)
    proof = circles.submit_verification_proof(user=w.bob, circle_id=circle.pk, proof_url="https://x.example/p.jpg")
    club = circle_with(w.ada, w.bob, name="Lenders")
    other = circles.create_circle(owner=w.bob, kind="interest", name="Club", join_policy="approval")
    asked = circles.join_circle(user=w.ada, circle_id=other.pk, note="me")
    dan = User.objects.create_user("+8613700000404", display_name="Dan")
    request = circles.send_friend_request(user=dan, to_user_id=w.ada.pk, note="hi")
    post = circles.create_post(author=w.ada, text="hidden post", circle_id=circle.pk)
    comment = circles.comment_on_post(user=w.ada, post_id=post.pk, text="mine")
    event = circles.create_event(actor=w.ada, circle_id=circle.pk, title="Meet", place="Here", capacity=5,
                                 starts_at=clock.now() + dt.timedelta(days=2))
    loan = loan_request(w.ada, club)
    product = Product.objects.create(name="稳健理财 90天", kind="wealth", risk_level=2, expected_yield_bps=310,
                                     min_amount=100_000, detail_url="https://bank.example/p/90")
    return {
        "Conversation": w.group, "Direct": w.direct, "Message": w.message, "Device": w.ada_device,
        "Notification": w.ada_notification, "RedPacket": packet.pk, "FriendTransfer": transfer.pk,
        "AaBill": bill.pk, "AaShare": bill2.shares.get(participant=w.ada).pk, "SettleUp": settle.pk,
        "Circle": circle.pk, "CircleInvitation": invitation.pk, "CircleJoinRequest": asked.pk,
        "VerificationRequest": proof.pk, "FriendRequest": request.pk, "Post": post.pk, "PostComment": comment.pk,
        "CircleEvent": event.pk, "LoanRequest": loan.pk, "MyLoan": loan.pk, "Product": product.pk,
    }


@pytest.fixture
def sweep(db):
    world = build_world()
    return world, victims(world)


PROBES = sorted(key for key, c in COVERAGE.items() if isinstance(c, Probe))


@pytest.mark.parametrize("key", PROBES)
def test_a_strangers_and_an_anonymous_callers_id_is_answered_like_a_missing_one(gql, sweep, key):
    world, objects = sweep
    probe = COVERAGE[key]
    type_name = GID_TYPE.get(probe.kind, probe.kind)
    mine, missing = encode_id(type_name, objects[probe.kind]), encode_id(type_name, MISSING_PK)
    bob = world.gid("User", world.bob.pk)
    others = {"userId": bob, "userIds": bob, "recipientId": bob, "productId": encode_id("Product", objects["Product"])}

    def ask(gid: str, token: str) -> dict:
        return _answer(gql(document_for(key, probe, gid, others), token=token))

    before = snapshot()
    for token in (world.te, ""):
        foreign = ask(mine, token)
        assert foreign == ask(missing, token), (key, foreign)
        text = json.dumps(foreign, ensure_ascii=False)
        assert "INTERNAL_ERROR" not in text and not leaks_phone(text) and "Ada" not in text, foreign
        if not token:
            assert "UNAUTHENTICATED" in text, foreign
    assert snapshot() == before
    # the probe reaches the object: its owner is answered otherwise than for a missing id
    owner = world.ta if probe.owner == "ada" else world.tb
    assert ask(mine, owner) != ask(missing, owner), key


NODE = "query($i: ID!) {{ node(id: $i) {{ __typename ... on {t} {sel} }} }}"


@pytest.mark.parametrize("type_name", VICTIM_NODE_TYPES)
def test_node_of_every_type_is_null_for_a_stranger_and_refused_anonymously(gql, sweep, type_name):
    world, objects = sweep
    gid = encode_id(type_name, objects[type_name])
    document = NODE.format(t=type_name, sel=selection(schema.graphql_schema.get_type(type_name), 2))
    assert gql(document, {"i": gid}, token=world.ta)["data"]["node"]["__typename"] == type_name
    assert gql(document, {"i": gid}, token=world.te) == {"data": {"node": None}}
    anonymous = gql(document, {"i": gid})
    assert anonymous["data"] == {"node": None} or anonymous["data"] is None
    assert [e["extensions"]["code"] for e in anonymous["errors"]] == ["UNAUTHENTICATED"]
