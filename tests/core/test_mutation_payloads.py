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

import json

import pytest
from graphql.pyutils import Undefined

from backend.accounts.ids import user_gid
from backend.schema import schema
from graphql import (
    GraphQLInterfaceType,
    GraphQLUnionType,
    get_named_type,
    is_leaf_type,
    is_non_null_type,
)
from tests.chat.conftest import new_user
from tests.conftest import last_code

pytestmark = pytest.mark.django_db

NEW_PHONE = "+8613700009999"
PASSWORD = "Quanzi-contract-2026!"
COVERED = (  # in the order the walk runs them, as one new user
    "requestLoginCode", "loginWithCode", "setPassword", "loginWithPassword", "refreshTokens", "updatePushTarget",
    "revokeDevice", "createGroup", "openDirectConversation", "addMembers", "renameConversation", "setMemberRole",
    "muteConversation", "sendMessage", "editMessage", "markConversationRead", "recallMessage", "removeMember",
    "leaveConversation", "markNotificationsRead", "updateNotificationPreferences", "topUp", "sendMoney",
    "withdraw", "logoutAllDevices", "logout",
)
NOT_WALKABLE: dict[str, str] = {  # mutation name → why it cannot run here with simple inputs
    **{name: "needs a campaign and a referral: walked with every payload field in "
             "tests/referrals/test_graphql.py::test_every_referrals_payload_renders"
       for name in ("createShareCode", "recordShareClick", "claimReferral", "chooseDoublingDay")},
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

    def __call__(self, name: str, arguments: str = "", *, token: str | None = None) -> dict:
        payload_type = mutations()[name].type
        document = f"mutation {{ {name}{f'({arguments})' if arguments else ''} {selection(payload_type)} }}"
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


def test_every_field_of_every_mutation_payload_renders(run, sms_outbox):
    bob, cyd = new_user("Bob"), new_user("Cyd")

    run("requestLoginCode", f"phone: {lit(NEW_PHONE)}")
    signed_up = run("loginWithCode", f"phone: {lit(NEW_PHONE)}, code: {lit(last_code(sms_outbox, NEW_PHONE))}, "
                                     f'device: {{platform: ANDROID, name: "Pixel"}}, displayName: "Neo"')
    assert signed_up["created"] is True
    me = signed_up["viewer"]
    assert me["kycLevel"] == "BASIC" and me["displayName"] == "Neo" and me["phone"] == NEW_PHONE
    assert me["devices"][0]["isCurrent"] is False  # the request that signed up carried no token yet
    run.token = signed_up["tokens"]["accessToken"]
    assert run.gql("{ me { id kycLevel } }", token=run.token)["data"]["me"] == {"id": me["id"], "kycLevel": "BASIC"}

    assert run("setPassword", f"password: {lit(PASSWORD)}")["viewer"]["hasPassword"] is True
    second = run("loginWithPassword", f"phone: {lit(NEW_PHONE)}, password: {lit(PASSWORD)}, "
                                      "device: {platform: IOS}")
    refreshed = run("refreshTokens", f"refreshToken: {lit(second['tokens']['refreshToken'])}")
    assert refreshed["viewer"]["id"] == me["id"]
    assert run("updatePushTarget", 'fcmToken: "fcm-token-1"')["device"]["pushEnabled"] is True
    other_device = next(d["id"] for d in run.gql("{ me { devices { id isCurrent } } }", token=run.token)
                        ["data"]["me"]["devices"] if not d["isCurrent"])
    assert run("revokeDevice", f"deviceId: {lit(other_device)}")["ok"] is True

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
    run("logoutAllDevices")
    # logoutAllDevices signed this device out too: sign in again for the last step
    again = run("loginWithPassword", f"phone: {lit(NEW_PHONE)}, password: {lit(PASSWORD)}")
    assert run("logout", token=again["tokens"]["accessToken"])["ok"] is True

    assert list(dict.fromkeys(run.seen)) == list(COVERED)


def test_every_mutation_is_covered():
    """A new mutation must join the walk above (or NOT_WALKABLE, with its reason): its payload gets asked."""
    assert set(mutations()) == set(COVERED) | set(NOT_WALKABLE)
