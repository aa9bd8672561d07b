"""Every field of every mutation payload renders right after the mutation created or changed its object.

The selections are generated from the schema (graphql-core's view of the graphene types), so a field added to
a payload is asked here without editing this file, and a new mutation fails `test_every_mutation_is_covered`
until it gets a step below. This is the test that would have caught the sign-up crash: `loginWithCode` for
a new number asking `viewer { kycLevel }` returned viewer: null and INTERNAL_ERROR ("Enum 'KycLevel' cannot
represent value: User.KycLevel.BASIC") because a freshly created user holds the model's enum member, not the
integer a database read gives.

The mutations covered are listed in COVERED (all of them today; NOT_WALKABLE names any that cannot run with
simple inputs, with the reason).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core import mail
from graphql.pyutils import Undefined

from backend.accounts.ids import decode_user, user_gid
from backend.accounts.models import User
from backend.chat import services as chat
from backend.circles import services as circles
from backend.core import clock
from backend.core.ids import decode_id, encode_id
from backend.payments import services as payments
from backend.schema import schema
from graphql import (
    GraphQLInterfaceType,
    GraphQLUnionType,
    get_named_type,
    is_leaf_type,
    is_non_null_type,
)
from tests.chat.conftest import new_user
from tests.conftest import befriend, last_code
from tests.payments.conftest import fund

pytestmark = pytest.mark.django_db

NEW_PHONE = "+8613700009999"
PASSWORD = "Quanzi-contract-2026!"
COVERED = (  # in the order the walk runs them, as one new user
    "requestLoginCode", "loginWithCode", "setPassword", "loginWithPassword", "refreshTokens", "updatePushTarget",
    "revokeDevice",
    # circles: friends first (only friends may share a group or a direct chat)
    "setDiscoverability", "findUser", "matchContacts", "sendFriendRequest", "respondFriendRequest", "removeFriend",
    "blockUser",
    "createGroup", "openDirectConversation", "addMembers", "renameConversation", "setMemberRole",
    "muteConversation", "sendMessage", "editMessage", "markConversationRead", "recallMessage", "removeMember",
    "leaveConversation", "markNotificationsRead", "updateNotificationPreferences", "topUp", "sendMoney",
    "withdraw",
    # payments
    "sendRedPacket", "grabRedPacket", "sendTransfer", "acceptTransfer", "declineTransfer", "createAaBill",
    "markAaSharePaidOffline", "remindAaBill", "closeAaBill", "cancelAaBill", "payAaShare", "declineAaShare",
    "startSettleUp", "cancelSettleUp", "paySettleUp",
    # circles: a circle of my own, then other people's
    "createCircle", "updateCircle", "decideVerification", "decideJoinRequest", "createInviteCode",
    "inviteToCircle", "setCircleMemberRole", "muteCircleMember", "vouch", "createCircleEvent", "rsvpEvent",
    "markAttendance", "cancelCircleEvent", "createPost", "likePost", "commentOnPost", "deleteComment",
    "reportAbuse", "deletePost", "removeCircleMember", "joinCircle", "leaveCircle", "acceptCircleInvitation",
    "requestVerification", "confirmVerification",
    "logoutAllDevices", "logout",
)
NOT_WALKABLE: dict[str, str] = {  # mutation name → why it cannot run here with simple inputs
    **{name: "needs a campaign and a referral: walked with every payload field in "
             "tests/referrals/test_graphql.py::test_every_referrals_payload_renders"
       for name in ("createShareCode", "recordShareClick", "claimReferral", "chooseDoublingDay")},
    **{name: "needs a client manager and operations' setup: walked in tests/advisors/test_payloads.py" for name in (
        "openMyClientManager", "requestDifferentManager", "addCustomerNote", "setCustomerTags", "createQuickReply",
        "sendQuickReply", "deleteQuickReply", "sendProductCard", "shareProduct", "setOfficeHours",
        "subscribeServiceAccount", "unsubscribeServiceAccount", "sendBroadcast")},
    **{name: "needs coupon types and a campaign: walked with every payload field in "
             "tests/campaigns/test_graphql.py::test_every_campaigns_payload_renders"
       for name in ("claimCoupon", "redeemCoupon", "drawLottery", "issueCoupon")},
    **{name: "needs a circle, a verified borrower and funded lenders: walked with every payload field in "
             "tests/loans/test_graphql.py::test_every_loans_payload_renders_and_the_whole_path_works"
       for name in ("createLoanRequest", "cancelLoanRequest", "pledgeToLoan", "repayLoan")},
}
NESTING = 4  # object levels below the payload: enough for payload → conversation → lastMessage → sender


def selection(graphql_type, depth: int = NESTING) -> str:
    """Every field of the type that takes no required argument, recursively."""
    named = get_named_type(graphql_type)
    if is_leaf_type(named):
        return ""
    if depth == 0 or isinstance(named, GraphQLInterfaceType | GraphQLUnionType):
        return "{ __typename }"
    parts = []
    for name, field in named.fields.items():
        if any(is_non_null_type(arg.type) and arg.default_value is Undefined for arg in field.args.values()):
            continue
        sub = selection(field.type, depth - 1)
        parts.append(f"{name} {sub}".strip())
    return "{ " + " ".join(parts) + " }"


def mutations() -> dict:
    return schema.graphql_schema.mutation_type.fields


class Runner:
    def __init__(self, gql):
        self.gql = gql
        self.token: str | None = None
        self.seen: list[str] = []

    def __call__(self, name: str, arguments: str = "", *, token: str | None = None, depth: int = NESTING) -> dict:
        payload_type = mutations()[name].type
        document = f"mutation {{ {name}{f'({arguments})' if arguments else ''} {selection(payload_type, depth)} }}"
        response = self.gql(document, token=token if token is not None else self.token)
        assert "errors" not in response, (name, response.get("errors"))
        payload = response["data"][name]
        assert payload is not None and payload["errors"] == [], (name, payload)
        self.seen.append(name)
        return payload


def lit(value) -> str:
    return json.dumps(value, ensure_ascii=False)


@pytest.fixture
def run(gql):
    return Runner(gql)


def pk_of(global_id: str, type_name: str) -> int:
    return decode_id(global_id, type_name=type_name)


def test_every_field_of_every_mutation_payload_renders(run, sms_outbox, django_capture_on_commit_callbacks):
    bob, cyd, dan, eve = new_user("Bob"), new_user("Cyd"), new_user("Dan"), new_user("Eve")

    run("requestLoginCode", f"phone: {lit(NEW_PHONE)}")
    signed_up = run("loginWithCode", f"phone: {lit(NEW_PHONE)}, code: {lit(last_code(sms_outbox, NEW_PHONE))}, "
                                     f'device: {{platform: ANDROID, name: "Pixel"}}, displayName: "Neo"')
    assert signed_up["created"] is True
    me = signed_up["viewer"]
    assert me["kycLevel"] == "BASIC" and me["displayName"] == "Neo" and me["phone"] == NEW_PHONE
    assert me["devices"][0]["isCurrent"] is False  # the request that signed up carried no token yet
    run.token = signed_up["tokens"]["accessToken"]
    assert run.gql("{ me { id kycLevel } }", token=run.token)["data"]["me"] == {"id": me["id"], "kycLevel": "BASIC"}

    neo = User.objects.get(pk=decode_user(me["id"], field="id"))
    run("requestLoginCode", f"phone: {lit(NEW_PHONE)}")  # a first password is proved with a fresh SMS code
    set_password = run("setPassword", f"password: {lit(PASSWORD)}, code: {lit(last_code(sms_outbox, NEW_PHONE))}")
    assert set_password["viewer"]["hasPassword"] is True
    second = run("loginWithPassword", f"phone: {lit(NEW_PHONE)}, password: {lit(PASSWORD)}, "
                                      "device: {platform: IOS}")
    refreshed = run("refreshTokens", f"refreshToken: {lit(second['tokens']['refreshToken'])}")
    assert refreshed["viewer"]["id"] == me["id"]
    assert run("updatePushTarget", 'fcmToken: "fcm-token-1"')["device"]["pushEnabled"] is True
    other_device = next(d["id"] for d in run.gql("{ me { devices { id isCurrent } } }", token=run.token)
                        ["data"]["me"]["devices"] if not d["isCurrent"])
    assert run("revokeDevice", f"deviceId: {lit(other_device)}")["ok"] is True

    # friends first: only friends may be put in a group or a direct chat (core.reach)
    assert run("setDiscoverability", "byPhone: true, newShareCode: true")["discoverability"]["byPhone"] is True
    bob_code = circles.discoverability_of(bob.pk).share_code
    assert run("findUser", f"shareCode: {lit(bob_code)}")["user"]["id"] == user_gid(bob)
    circles.set_discoverability(user=bob, by_phone=True)
    # a list of users, each with every field of theirs, passes the query cost limit: two levels
    matched = run("matchContacts", f"phones: [{lit(bob.phone)}]", depth=2)["users"]
    assert [u["id"] for u in matched] == [user_gid(bob)]
    asked = run("sendFriendRequest", f'userId: {lit(user_gid(bob))}, note: "Neo here"')["request"]
    assert asked["toUser"]["id"] == user_gid(bob) and asked["status"] == "pending"
    circles.accept_friend_request(user=bob, request_id=pk_of(asked["id"], "FriendRequest"))
    incoming = circles.send_friend_request(user=cyd, to_user_id=neo.pk, note="Cyd here")
    answered = run("respondFriendRequest", f'requestId: {lit(encode_id("FriendRequest", incoming.pk))}, accept: true')
    assert answered["request"]["status"] == "accepted" and answered["request"]["fromUser"]["id"] == user_gid(cyd)
    befriend(neo, dan)
    assert run("removeFriend", f"userId: {lit(user_gid(dan))}")["ok"] is True
    assert run("blockUser", f"userId: {lit(user_gid(eve))}, blocked: true")["ok"] is True

    group = run("createGroup", f'title: "Lunch", memberIds: [{lit(user_gid(bob))}]')["conversation"]
    assert group["memberCount"] == 2 and group["lastMessage"]["system"]["event"] == "group_created"
    direct = run("openDirectConversation", f"userId: {lit(user_gid(bob))}")["conversation"]
    assert direct["peer"]["id"] == user_gid(bob)
    c = lit(group["id"])
    assert run("addMembers", f"conversationId: {c}, userIds: [{lit(user_gid(cyd))}]")["conversation"]["memberCount"] == 3
    assert run("renameConversation", f'conversationId: {c}, title: "Dinner"')["conversation"]["title"] == "Dinner"
    run("setMemberRole", f"conversationId: {c}, userId: {lit(user_gid(cyd))}, role: ADMIN")
    assert run("muteConversation", f"conversationId: {c}, muted: true")["conversation"]["muted"] is True
    sent = run("sendMessage", f'input: {{conversationId: {c}, clientMsgId: "c-1", text: "你好"}}')["message"]
    assert sent["sender"]["id"] == me["id"] and sent["body"] == "你好"
    assert run("editMessage", f'messageId: {lit(sent["id"])}, text: "hi"')["message"]["editedAt"]
    run("markConversationRead", f"conversationId: {c}, seq: {sent['seq']}")
    assert run("recallMessage", f"messageId: {lit(sent['id'])}")["message"]["recalled"] is True
    run("removeMember", f"conversationId: {c}, userId: {lit(user_gid(cyd))}")
    assert run("leaveConversation", f"conversationId: {c}")["ok"] is True

    run("markNotificationsRead", "all: true")
    assert run("updateNotificationPreferences", "money: true")["preferences"]["money"] is True

    topped = run("topUp", 'amount: 50000, idempotencyKey: "topup-contract-1"')
    assert topped["operation"]["status"] == "SUCCEEDED" and topped["wallet"]["balance"] == 50000
    paid = run("sendMoney", f'recipientId: {lit(user_gid(bob))}, amount: 1234, idempotencyKey: "pay-contract-1"')
    assert paid["transfer"]["counterparty"]["userId"] == user_gid(bob) and paid["transfer"]["amount"] == -1234
    run("withdraw", 'amount: 1000, idempotencyKey: "withdraw-contract-1"')

    walk_payments(run, neo, bob, cyd, direct_id=direct["id"])
    walk_circles(run, neo, bob, cyd, django_capture_on_commit_callbacks)

    run("logoutAllDevices")
    # logoutAllDevices signed this device out too: sign in again for the last step
    again = run("loginWithPassword", f"phone: {lit(NEW_PHONE)}, password: {lit(PASSWORD)}")
    assert run("logout", token=again["tokens"]["accessToken"])["ok"] is True

    assert list(dict.fromkeys(run.seen)) == list(COVERED)


def walk_payments(run, neo, bob, cyd, *, direct_id: str) -> None:
    """Red packets, transfers, AA bills and settle-up in a group of Neo, Bob and Cyd (all funded)."""
    fund(bob, 100_000)
    fund(cyd, 100_000)
    group = chat.create_group(owner=neo, title="AA", member_ids=[bob.pk, cyd.pk])
    g = lit(encode_id("Conversation", group.pk))
    packet = run("sendRedPacket", f'conversationId: {g}, kind: LUCKY, amount: 300, count: 2, greeting: "恭喜", '
                                  'idempotencyKey: "packet-contract-1"')["redPacket"]
    assert packet["status"] == "OPEN" and packet["seed"] is None and packet["senderId"] == user_gid(neo)
    grabbed = run("grabRedPacket", f"redPacketId: {lit(packet['id'])}")
    assert grabbed["redPacket"]["myGrab"]["amount"] == grabbed["amount"] > 0

    sent = run("sendTransfer", f'conversationId: {lit(direct_id)}, amount: 200, note: "午饭", '
                               'idempotencyKey: "transfer-contract-1"')["transfer"]
    assert sent["status"] == "PENDING" and sent["recipientId"] == user_gid(bob)
    direct_pk = pk_of(direct_id, "Conversation")
    incoming = [payments.send_transfer(sender=bob, conversation_id=direct_pk, amount=100 + n,
                                       idempotency_key=f"transfer-to-neo-{n}")[0] for n in range(2)]
    accepted = run("acceptTransfer", f"transferId: {lit(encode_id('FriendTransfer', incoming[0].pk))}")
    assert accepted["transfer"]["status"] == "ACCEPTED"
    declined = run("declineTransfer", f"transferId: {lit(encode_id('FriendTransfer', incoming[1].pk))}")
    assert declined["transfer"]["status"] == "DECLINED"

    everyone = ", ".join(f"{{userId: {lit(user_gid(u))}}}" for u in (neo, bob, cyd))
    bill = run("createAaBill", f'conversationId: {g}, title: "火锅", amount: 300, method: EQUAL, '
                               f'participants: [{everyone}], idempotencyKey: "bill-contract-1"')["bill"]
    assert sorted(s["amount"] for s in bill["shares"]) == [100, 100, 100] and bill["myShare"]["status"] == "OWN"
    bobs_share = next(s["id"] for s in bill["shares"] if s["participantId"] == user_gid(bob))
    marked = run("markAaSharePaidOffline", f"shareId: {lit(bobs_share)}")["bill"]
    assert "PAID_OFFLINE" in [s["status"] for s in marked["shares"]]
    assert run("remindAaBill", f"billId: {lit(bill['id'])}")["reminded"] == 1
    assert run("closeAaBill", f"billId: {lit(bill['id'])}")["bill"]["status"] == "CLOSED"
    doomed = run("createAaBill", f'conversationId: {g}, title: "KTV", amount: 200, method: EQUAL, '
                                 f'participants: [{everyone}], idempotencyKey: "bill-contract-2"')["bill"]
    cancelled = run("cancelAaBill", f"billId: {lit(doomed['id'])}, refundPaid: true")["bill"]
    assert cancelled["status"] == "CANCELLED" and cancelled["refundedOnCancel"] is True

    def bobs_bill(key: str):
        made, _ = payments.create_bill(creator=bob, conversation_id=group.pk, title="咖啡", amount=200,
                                       method="equal", participants=[neo.pk, cyd.pk], idempotency_key=key)
        return encode_id("AaShare", made.shares.get(participant=neo).pk)

    paid = run("payAaShare", f"shareId: {lit(bobs_bill('bill-by-bob-1'))}")["bill"]
    assert paid["myShare"]["status"] == "PAID" and paid["myShare"]["paidAt"]
    assert run("declineAaShare", f"shareId: {lit(bobs_bill('bill-by-bob-2'))}")["bill"]["myShare"]["status"] == "DECLINED"
    bobs_bill("bill-by-bob-3")  # Neo owes Bob 100 on it: something to settle
    first = run("startSettleUp", f"conversationId: {g}")["settleUp"]
    assert first["status"] == "OPEN" and first["transfers"]
    assert run("cancelSettleUp", f"settleUpId: {lit(first['id'])}")["settleUp"]["status"] == "CANCELLED"
    second = run("startSettleUp", f"conversationId: {g}")["settleUp"]
    settled = run("paySettleUp", f"settleUpId: {lit(second['id'])}")["settleUp"]
    assert all(t["paid"] for t in settled["transfers"] if t["debtorId"] == user_gid(neo))


def walk_circles(run, neo, bob, cyd, capture_on_commit) -> None:
    """Neo's own verified alumni circle run as its owner; Bob's circles joined, accepted and verified into."""
    circle = run("createCircle", 'kind: ALUMNI, name: "北大 2010", visibility: PUBLIC, joinPolicy: APPROVAL, '
                                 'requiresVerification: true, verificationDomain: "pku.edu.cn"')["circle"]
    assert circle["myRole"] == "OWNER" and circle["conversationId"] and circle["myTrust"]["score"] >= 0
    c, circle_pk = lit(circle["id"]), pk_of(circle["id"], "Circle")
    updated = run("updateCircle", f'circleId: {c}, description: "校友会", membersMayMessage: true')["circle"]
    assert updated["description"] == "校友会"
    proof = circles.submit_verification_proof(user=cyd, circle_id=circle_pk, proof_url="https://x.example/cyd.jpg")
    decided = run("decideVerification", f"requestId: {lit(encode_id('VerificationRequest', proof.pk))}, approve: true")
    assert decided["verification"]["status"] == "approved"
    asked = circles.join_circle(user=cyd, circle_id=circle_pk, note="Cyd, class of 2010")
    joined = run("decideJoinRequest", f"requestId: {lit(encode_id('CircleJoinRequest', asked.pk))}, approve: true")
    assert joined["request"]["status"] == "approved" and joined["request"]["circle"]["memberCount"] == 2
    assert run("createInviteCode", f"circleId: {c}, expiresInHours: 24, maxUses: 5")["invite"]["uses"] == 0
    assert run("inviteToCircle", f"circleId: {c}, userId: {lit(user_gid(bob))}")["ok"] is True
    cyd_id = lit(user_gid(cyd))
    assert run("setCircleMemberRole", f"circleId: {c}, userId: {cyd_id}, role: ADMIN")["ok"] is True
    assert run("muteCircleMember", f"circleId: {c}, userId: {cyd_id}, hours: 1")["ok"] is True
    trust = run("vouch", f"circleId: {c}, userId: {cyd_id}")["trust"]
    assert trust["vouchesReceived"] == 1 and trust["verified"] is True
    starts = lit((clock.now() + dt.timedelta(days=7)).isoformat())
    event = run("createCircleEvent", f'circleId: {c}, title: "返校日", place: "未名湖", startsAt: {starts}, '
                                     "capacity: 20")["event"]
    assert event["goingCount"] == 0 and event["myRsvp"] is None
    assert run("rsvpEvent", f"eventId: {lit(event['id'])}, going: true")["status"] == "GOING"
    circles.rsvp(user=cyd, event_id=pk_of(event["id"], "CircleEvent"), going=True)
    assert run("markAttendance", f"eventId: {lit(event['id'])}, userId: {cyd_id}, attended: true")["ok"] is True
    assert run("cancelCircleEvent", f"eventId: {lit(event['id'])}")["ok"] is True
    post = run("createPost", f'text: "聚会照片", circleId: {c}')["post"]
    assert post["circle"]["id"] == circle["id"] and post["likedByMe"] is False
    liked = run("likePost", f"postId: {lit(post['id'])}, liked: true")["post"]
    assert liked["likeCount"] == 1 and liked["likedByMe"] is True
    comment = run("commentOnPost", f'postId: {lit(post["id"])}, text: "好久不见"')["comment"]
    assert comment["author"]["id"] == user_gid(neo)
    assert run("deleteComment", f"commentId: {lit(comment['id'])}")["ok"] is True
    assert run("reportAbuse", f'reason: "spam", postId: {lit(post["id"])}')["ok"] is True
    assert run("deletePost", f"postId: {lit(post['id'])}")["ok"] is True
    assert run("removeCircleMember", f"circleId: {c}, userId: {cyd_id}")["ok"] is True

    open_circle = circles.create_circle(owner=bob, kind="interest", name="跑步")
    joined = run("joinCircle", f'circleId: {lit(encode_id("Circle", open_circle.pk))}, note: "hi"')
    assert joined["pending"] is False and joined["circle"]["myRole"] == "MEMBER"
    assert run("leaveCircle", f"circleId: {lit(joined['circle']['id'])}")["ok"] is True
    private = circles.create_circle(owner=bob, kind="friends", name="发小", visibility="invite_only",
                                    join_policy="approval")
    invitation = circles.invite_user(actor=bob, circle_id=private.pk, user_id=neo.pk)
    accepted = run("acceptCircleInvitation", f"requestId: {lit(encode_id('CircleJoinRequest', invitation.pk))}")
    assert accepted["circle"]["myRole"] == "MEMBER"
    school = circles.create_circle(owner=bob, kind="alumni", name="清华", requires_verification=True,
                                   verification_domain="tsinghua.edu.cn")
    s = lit(encode_id("Circle", school.pk))
    with capture_on_commit(execute=True):
        started = run("requestVerification", f'circleId: {s}, email: "neo@tsinghua.edu.cn"')["verification"]
    assert started["method"] == "email" and started["status"] == "pending"
    code = mail.outbox[-1].body.split()[-1].rstrip(".")
    assert run("confirmVerification", f"circleId: {s}, code: {lit(code)}")["verification"]["status"] == "approved"


def test_every_mutation_is_covered():
    """A new mutation must join the walk above (or NOT_WALKABLE, with its reason): its payload gets asked."""
    assert set(mutations()) == set(COVERED) | set(NOT_WALKABLE)
