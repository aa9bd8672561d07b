"""One opaque global id per user, and Relay `node`/`nodes` for every node type through fetch_scoped."""

from __future__ import annotations

import base64

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backend.accounts.ids import user_gid
from backend.chat import services as chat
from backend.circles import services as circles
from backend.core import nodes
from backend.core.ids import encode_id
from backend.notifications.models import Notification
from backend.payments import services as payments
from backend.schema import schema
from backend.wallet import services as wallet
from backend.wallet.models import LedgerAccount
from tests.chat.conftest import new_user, token_for
from tests.conftest import befriend

pytestmark = pytest.mark.django_db


def raw_of(global_id: str) -> str:
    return base64.b64decode(global_id).decode()


def test_a_user_has_one_id_everywhere(gql):
    ada, bob = new_user("Ada"), new_user("Bob")
    ta = token_for(ada)
    me = gql("{ me { id } }", token=ta)["data"]["me"]["id"]
    befriend(ada, bob)
    group = chat.create_group(owner=ada, title="G", member_ids=[bob.pk])
    chat.send_message(conversation_id=group.pk, sender=ada, client_msg_id="m1", text="hi")
    conversation_id = encode_id("Conversation", group.pk)
    data = gql("""query($c: ID!) { messages(conversationId: $c) { edges { node { sender { id } system } } }
                  conversationMembers(conversationId: $c) { edges { node { user { id displayName } } } } }""",
               {"c": conversation_id}, token=ta)["data"]
    senders = [e["node"]["sender"]["id"] for e in data["messages"]["edges"]]
    members = {e["node"]["user"]["displayName"]: e["node"]["user"]["id"] for e in data["conversationMembers"]["edges"]}
    assert senders == [me, me] and members == {"Ada": me, "Bob": user_gid(bob)}
    # the system message names users in camelCase with the same ids
    system = data["messages"]["edges"][0]["node"]["system"]
    assert system == {"event": "group_created", "actorId": me, "title": "G", "userIds": [user_gid(bob)]}
    # and `me { id }` pays like the id anyone else sees
    wallet.top_up(user=bob, amount=500, idempotency_key="topup-bob-1")
    paid = gql('mutation($r: ID!) { sendMoney(recipientId: $r, amount: 100, idempotencyKey: "pay-ada-0001") '
               "{ errors { code } } }", {"r": me}, token=token_for(bob))["data"]["sendMoney"]
    assert paid == {"errors": []}


def test_user_ids_are_opaque_and_not_walkable(gql):
    first, second = new_user(), new_user()
    ids = [user_gid(first), user_gid(second)]
    tokens = [raw_of(i).split(":")[1] for i in ids]
    assert second.pk == first.pk + 1 and all(len(t) == 32 for t in tokens)
    # consecutive users get unrelated tokens: about half of the 128 bits differ
    assert 32 < bin(int(tokens[0], 16) ^ int(tokens[1], 16)).count("1") < 96
    me = token_for(first)
    sequential = encode_id("User", second.pk)  # the old, walkable spelling
    flipped = encode_id("User", tokens[1][:-1] + ("0" if tokens[1][-1] != "0" else "1"))
    for guess in (sequential, flipped, encode_id("User", tokens[1].upper())):
        result = gql('mutation($r: ID!) { sendMoney(recipientId: $r, amount: 1, idempotencyKey: "guess-0001") '
                     "{ errors { field code } } }", {"r": guess}, token=me)["data"]["sendMoney"]
        assert result["errors"] == [{"field": "recipientId", "code": "NOT_FOUND"}]
        assert gql("query($i: ID!) { node(id: $i) { id } }", {"i": guess}, token=me)["data"]["node"] is None


NODE = "query($i: ID!) { node(id: $i) { __typename id } }"


def test_every_node_type_is_registered():
    node_types = {t.name for t in schema.graphql_schema.get_possible_types(schema.graphql_schema.get_type("Node"))}
    assert node_types == set(nodes.registered())


def test_node_refetches_my_objects_and_hides_everyone_elses(gql):
    ada, bob, eve = new_user("Ada"), new_user("Bob"), new_user("Eve")
    ta, te = token_for(ada), token_for(eve)
    befriend(ada, bob)
    group = chat.create_group(owner=ada, title="G", member_ids=[bob.pk])
    message = chat.send_message(conversation_id=group.pk, sender=ada, client_msg_id="m1", text="hi").message
    wallet.top_up(user=ada, amount=10_000, idempotency_key="topup-ada-1")
    wallet.send_money(sender=ada, recipient_id=bob.pk, amount=250, idempotency_key="pay-bob-0001")
    alert = Notification.objects.filter(recipient=ada, event="wallet.balance_changed").order_by("-id").first()
    entry_id = alert.payload["entry_id"]
    statement = gql("{ myWallet { id statement(first: 1) { edges { node { id } } } } }", token=ta)["data"]["myWallet"]
    line_id = statement["statement"]["edges"][0]["node"]["id"]
    device_id = gql("{ me { devices { id } } }", token=ta)["data"]["me"]["devices"][0]["id"]
    mine = {
        "User": user_gid(ada), "Conversation": encode_id("Conversation", group.pk),
        "Message": encode_id("Message", message.pk), "JournalEntry": entry_id, "StatementLine": line_id,
        "Wallet": statement["id"], "Notification": encode_id("Notification", alert.pk), "Device": device_id,
        "BankOperation": encode_id("BankOperation", ada.ledger_accounts.get().bank_operations.get().pk),
    }
    assert set(mine) | CIRCLES_AND_PAYMENTS | REFERRALS | ADVISORS | CAMPAIGNS | LOANS == set(nodes.registered())
    for type_name, gid in mine.items():
        assert gql(NODE, {"i": gid}, token=ta)["data"]["node"] == {"__typename": type_name, "id": gid}, type_name
        expected = {"__typename": "User", "id": gid} if type_name == "User" else None  # public profiles only
        assert gql(NODE, {"i": gid}, token=te)["data"]["node"] == expected, type_name
    # another user's profile: public fields only
    profile = gql("query($i: ID!) { node(id: $i) { ... on User { displayName phone kycLevel devices { id } } } }",
                  {"i": user_gid(ada)}, token=te)["data"]["node"]
    assert profile == {"displayName": "Ada", "phone": None, "kycLevel": None, "devices": None}
    # a balance alert's entry refetches with my side of it
    entry = gql("query($i: ID!) { node(id: $i) { ... on JournalEntry { kind lines { amount direction } } } }",
                {"i": entry_id}, token=ta)["data"]["node"]
    assert entry == {"kind": "transfer", "lines": [{"amount": -250, "direction": "OUT"}]}
    # nodes keeps the order and answers null for missing, garbled or foreign ids
    answer = gql("query($i: [ID!]!) { nodes(ids: $i) { id } }",
                 {"i": [mine["Message"], "garbage", encode_id("Message", 10**9), mine["Wallet"]]}, token=te)
    assert answer["data"]["nodes"] == [None, None, None, None]
    answer = gql("query($i: [ID!]!) { nodes(ids: $i) { id } }", {"i": [mine["Wallet"], mine["Message"]]}, token=ta)
    assert answer["data"]["nodes"] == [{"id": mine["Wallet"]}, {"id": mine["Message"]}]
    too_many = gql("query($i: [ID!]!) { nodes(ids: $i) { id } }", {"i": [mine["Wallet"]] * 101}, token=ta)
    assert too_many["errors"][0]["extensions"]["code"] == "TOO_MANY_IDS"
    # a member who left no longer refetches the conversation or its messages
    chat.leave_conversation(conversation_id=group.pk, user=bob)
    tb = token_for(bob)
    assert gql(NODE, {"i": mine["Conversation"]}, token=tb)["data"]["node"] is None
    assert gql(NODE, {"i": mine["Message"]}, token=tb)["data"]["node"] is None


def test_node_needs_a_session(gql):
    result = gql(NODE, {"i": encode_id("Message", 1)})
    assert result["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_wallet_is_opened_at_sign_up_and_reading_it_never_writes(gql):
    user = new_user()
    assert LedgerAccount.objects.filter(owner=user, kind=LedgerAccount.Kind.USER_WALLET).count() == 1
    token = token_for(user)
    with CaptureQueriesContext(connection) as queries:
        data = gql("{ myWallet { balance available pendingHolds { id } statement { edges { node { id } } } } }",
                   token=token)["data"]
    assert data["myWallet"]["balance"] == 0
    writes = [q["sql"] for q in queries.captured_queries
              if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
              and "accounts_device" not in q["sql"]]  # the token check refreshes the device's last_seen_at
    assert writes == []


CIRCLES_AND_PAYMENTS = {"Circle", "FriendRequest", "CircleJoinRequest", "VerificationRequest", "Post", "PostComment",
                        "CircleEvent", "RedPacket", "FriendTransfer", "AaBill", "SettleUp"}
# refetched by their owner and null for a stranger in tests/referrals/test_graphql.py
REFERRALS = {"ShareCode", "ReferralCampaign", "DoublingCard"}
# refetched by who may see them and null for anyone else in tests/advisors/test_nodes.py
ADVISORS = {"Product", "ServiceAccount", "QuickReply", "CustomerNote", "Broadcast"}
# in tests/campaigns/test_nodes.py
CAMPAIGNS = {"MarketingCampaign", "CouponType", "Coupon", "LotteryDraw"}
# in tests/loans/test_nodes.py
LOANS = {"LoanRequest", "MyLoan", "LoanPledge"}


def refetch(gql, gid: str, token: str):
    return gql(NODE, {"i": gid}, token=token)["data"]["node"]


def test_circles_and_payments_objects_refetch_for_who_may_see_them_only(gql):
    """Each circles and payments node type answers its owner or member and is null for a stranger, by the
    same rule as the app's own queries."""
    import datetime as dt

    from backend.core import clock
    from tests.payments.conftest import fund, group_of

    ada, bob, cyd, dan, eve = (new_user(n) for n in ("Ada", "Bob", "Cyd", "Dan", "Eve"))
    ta, tb, tc, td, te = (token_for(u) for u in (ada, bob, cyd, dan, eve))
    # circles: a hidden circle (Ada owns, Bob is in), an approval circle Dan asked to join, Ada's moment
    hidden = circles.create_circle(owner=ada, kind="alumni", name="清华校友", visibility="hidden",
                                   join_policy="invite_code", requires_verification=True,
                                   verification_domain="tsinghua.edu.cn")
    befriend(ada, bob)
    invitation = circles.invite_user(actor=ada, circle_id=hidden.pk, user_id=bob.pk)
    proof = circles.submit_verification_proof(user=bob, circle_id=hidden.pk, proof_url="https://x.example/diploma.jpg")
    circles.decide_verification(actor=ada, request_id=proof.pk, approve=True)
    circles.accept_invitation(user=bob, request_id=invitation.pk)
    club = circles.create_circle(owner=ada, kind="interest", name="跑步", join_policy="approval")
    asked = circles.join_circle(user=dan, circle_id=club.pk, note="let me in")
    request = circles.send_friend_request(user=ada, to_user_id=dan.pk, note="hi")
    post = circles.create_post(author=ada, text="周末爬山")
    comment = circles.comment_on_post(user=bob, post_id=post.pk, text="同去")
    event = circles.create_event(actor=ada, circle_id=hidden.pk, title="返校", place="二校门", capacity=10,
                                 starts_at=clock.now() + dt.timedelta(days=3))
    # payments: Ada, Bob and Cyd in a funded group; a direct chat between Ada and Bob
    for user in (ada, bob, cyd):
        fund(user, 10_000)
    group = group_of(ada, bob, cyd)
    direct = chat.open_direct_conversation(user=ada, other_user_id=bob.pk)
    packet, _ = payments.send_red_packet(sender=ada, conversation_id=group.pk, kind="lucky", amount=300, count=2,
                                         idempotency_key="node-packet-1")
    transfer, _ = payments.send_transfer(sender=ada, conversation_id=direct.pk, amount=100,
                                         idempotency_key="node-transfer-1")
    bill, _ = payments.create_bill(creator=ada, conversation_id=group.pk, title="咖啡", amount=200, method="equal",
                                   participants=[bob.pk, cyd.pk], idempotency_key="node-bill-1")
    settle = payments.start_settlement(user=ada, conversation_id=group.pk)

    ids = {
        "Circle": encode_id("Circle", hidden.pk), "FriendRequest": encode_id("FriendRequest", request.pk),
        "CircleJoinRequest": encode_id("CircleJoinRequest", asked.pk),
        "VerificationRequest": encode_id("VerificationRequest", proof.pk), "Post": encode_id("Post", post.pk),
        "PostComment": encode_id("PostComment", comment.pk), "CircleEvent": encode_id("CircleEvent", event.pk),
        "RedPacket": encode_id("RedPacket", packet.pk), "FriendTransfer": encode_id("FriendTransfer", transfer.pk),
        "AaBill": encode_id("AaBill", bill.pk), "SettleUp": encode_id("SettleUp", settle.pk),
    }
    assert set(ids) == CIRCLES_AND_PAYMENTS
    for type_name, gid in ids.items():  # Ada owns, created, administers or is a member of each
        assert refetch(gql, gid, ta) == {"__typename": type_name, "id": gid}, type_name
        assert refetch(gql, gid, te) is None, type_name
    answer = gql("query($i: [ID!]!) { nodes(ids: $i) { id } }", {"i": list(ids.values())}, token=te)
    assert answer["data"]["nodes"] == [None] * len(ids)

    def seen_by(token: str) -> set[str]:
        return {name for name, gid in ids.items() if refetch(gql, gid, token) is not None}

    # Bob: member of the hidden circle and both chats; his own verification request and comment; Ada's friend.
    # Not Ada's request to Dan, nor Dan's request to join a circle Bob does not administer.
    assert seen_by(tb) == CIRCLES_AND_PAYMENTS - {"FriendRequest", "CircleJoinRequest"}
    # Cyd: the group's money and his friend Ada's moment, but not Bob's comment on it (Cyd and Bob are not
    # friends: WeChat's rule), the direct-chat transfer, or the hidden circle and what is in it
    assert seen_by(tc) == {"RedPacket", "AaBill", "SettleUp", "Post"}
    # Dan: the request he filed and the friend request he received
    assert seen_by(td) == {"CircleJoinRequest", "FriendRequest"}
    # the refetched event carries the viewer's own counts, like circleEvents does
    event_node = gql("query($i: ID!) { node(id: $i) { ... on CircleEvent { title goingCount myRsvp } } }",
                     {"i": ids["CircleEvent"]}, token=tb)["data"]["node"]
    assert event_node == {"title": "返校", "goingCount": 0, "myRsvp": None}
    # a join request shows to the circle's admins, not to its plain members
    seat = circles.invite_user(actor=ada, circle_id=club.pk, user_id=bob.pk)
    circles.accept_invitation(user=bob, request_id=seat.pk)
    assert refetch(gql, ids["CircleJoinRequest"], tb) is None
    circles.set_member_role(actor=ada, circle_id=club.pk, user_id=bob.pk, role="admin")
    assert refetch(gql, ids["CircleJoinRequest"], tb) == {"__typename": "CircleJoinRequest",
                                                          "id": ids["CircleJoinRequest"]}
    circles.set_member_role(actor=ada, circle_id=club.pk, user_id=bob.pk, role="member")
    # a public circle is anyone's to look at
    assert refetch(gql, encode_id("Circle", club.pk), te) == {"__typename": "Circle", "id": encode_id("Circle", club.pk)}
    # leaving ends it: Bob out of the circle and out of the group
    circles.leave_circle(user=bob, circle_id=hidden.pk)
    chat.leave_conversation(conversation_id=group.pk, user=bob)
    assert seen_by(tb) == {"FriendTransfer", "Post", "PostComment", "VerificationRequest"}
    # a comment follows its post: once Ada deletes the moment, Bob's comment on it is gone too
    circles.delete_post(user=ada, post_id=post.pk)
    assert refetch(gql, ids["PostComment"], tb) is None and refetch(gql, ids["Post"], tb) is None
