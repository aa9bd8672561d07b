"""Bad input on every mutation: wrong types, empty, 1 MB, unicode edge cases (NUL, lone surrogates, RTL
overrides, zero-width), absurd numbers. Each gets a stable error code (in the payload, or a top-level GraphQL
validation error for a wrong type) and the database does not change. Never INTERNAL_ERROR."""

from __future__ import annotations

import json

import pytest

from .conftest import snapshot

pytestmark = pytest.mark.django_db

MB = "x" * (1 << 20)
NUL = "a\u0000b"
SURROGATE = "a\ud800b"
EVIL_STRINGS = {"empty": "", "spaces": "   ", "zero-width": "\u200b\u200c\u200d\ufeff", "nul": NUL,
                "lone-surrogate": SURROGATE, "1MB": MB, "rtl-override": "\u202e\u202d", "newlines": "\n\r\t"}

E = "errors { field code message }"

# name → (document, variables builder(world, bad value)); the bad value goes into one argument
STRING_ARGS = {
    "createGroup.title": ("mutation M($v: String!, $u: [ID!]!) { createGroup(title: $v, memberIds: $u) "
                          f"{{ conversation {{ id }} {E} }} }}",
                          lambda w, v: {"v": v, "u": [w.gid("User", w.bob.pk)]}),
    "renameConversation.title": ("mutation M($v: String!, $c: ID!) { renameConversation(conversationId: $c, "
                                 f"title: $v) {{ conversation {{ id }} {E} }} }}",
                                 lambda w, v: {"v": v, "c": w.gid("Conversation", w.group)}),
    "sendMessage.text": ("mutation M($v: String, $c: ID!) { sendMessage(input: {conversationId: $c, "
                         f"clientMsgId: \"new-1\", text: $v}}) {{ message {{ id }} {E} }} }}",
                         lambda w, v: {"v": v, "c": w.gid("Conversation", w.direct)}),
    "sendMessage.clientMsgId": ("mutation M($v: String!, $c: ID!) { sendMessage(input: {conversationId: $c, "
                                f"clientMsgId: $v, text: \"hi\"}}) {{ message {{ id }} {E} }} }}",
                                lambda w, v: {"v": v, "c": w.gid("Conversation", w.direct)}),
    "sendMessage.attachment.name": (
        "mutation M($v: String, $c: ID!) { sendMessage(input: {conversationId: $c, clientMsgId: \"f-1\", kind: FILE, "
        f"attachment: {{url: \"https://cdn.example/f\", name: $v}}}}) {{ message {{ id }} {E} }} }}",
        lambda w, v: {"v": v, "c": w.gid("Conversation", w.direct)}),
    "sendMessage.attachment.url": (
        "mutation M($v: String!, $c: ID!) { sendMessage(input: {conversationId: $c, clientMsgId: \"i-1\", kind: IMAGE, "
        f"attachment: {{url: $v}}}}) {{ message {{ id }} {E} }} }}",
        lambda w, v: {"v": v, "c": w.gid("Conversation", w.direct)}),
    "editMessage.text": (f"mutation M($v: String!, $m: ID!) {{ editMessage(messageId: $m, text: $v) "
                         f"{{ message {{ id }} {E} }} }}", lambda w, v: {"v": v, "m": w.gid("Message", w.message)}),
    "sendMoney.memo": ("mutation M($v: String, $r: ID!) { sendMoney(recipientId: $r, amount: 100, "
                       f"idempotencyKey: \"memo-test-1\", memo: $v) {{ replayed {E} }} }}",
                       lambda w, v: {"v": v, "r": w.gid("User", w.bob.pk)}),
    "sendMoney.idempotencyKey": ("mutation M($v: String!, $r: ID!) { sendMoney(recipientId: $r, amount: 100, "
                                 f"idempotencyKey: $v) {{ replayed {E} }} }}",
                                 lambda w, v: {"v": v, "r": w.gid("User", w.bob.pk)}),
    "topUp.idempotencyKey": (f"mutation M($v: String!) {{ topUp(amount: 100, idempotencyKey: $v) {{ replayed {E} }} }}",
                             lambda w, v: {"v": v}),
    "withdraw.idempotencyKey": (f"mutation M($v: String!) {{ withdraw(amount: 100, idempotencyKey: $v) "
                                f"{{ replayed {E} }} }}", lambda w, v: {"v": v}),
    "requestLoginCode.phone": (f"mutation M($v: String!) {{ requestLoginCode(phone: $v) {{ codeExpiresAt {E} }} }}",
                               lambda w, v: {"v": v}),
    "loginWithCode.code": (f"mutation M($v: String!) {{ loginWithCode(phone: \"+8613755501233\", code: $v) "
                           f"{{ created {E} }} }}", lambda w, v: {"v": v}),
    "loginWithCode.displayName": ("mutation M($v: String) { loginWithCode(phone: \"+8613755501299\", code: \"123456\", "
                                  f"displayName: $v) {{ created {E} }} }}", lambda w, v: {"v": v}),
    "loginWithCode.device.name": ("mutation M($v: String) { loginWithCode(phone: \"+8613755501299\", code: \"123456\", "
                                  f"device: {{platform: IOS, name: $v}}) {{ created {E} }} }}", lambda w, v: {"v": v}),
    "loginWithPassword.password": ("mutation M($v: String!) { loginWithPassword(phone: \"+8613755501233\", "
                                   f"password: $v) {{ viewer {{ id }} {E} }} }}", lambda w, v: {"v": v}),
    "loginWithPassword.phone": (f"mutation M($v: String!) {{ loginWithPassword(phone: $v, password: \"pw\") "
                                f"{{ viewer {{ id }} {E} }} }}", lambda w, v: {"v": v}),
    "refreshTokens.refreshToken": (f"mutation M($v: String!) {{ refreshTokens(refreshToken: $v) "
                                   f"{{ viewer {{ id }} {E} }} }}", lambda w, v: {"v": v}),
    "setPassword.password": (f"mutation M($v: String!) {{ setPassword(password: $v) {{ viewer {{ id }} {E} }} }}",
                             lambda w, v: {"v": v}),
    "updatePushTarget.fcmToken": (f"mutation M($v: String) {{ updatePushTarget(fcmToken: $v) "
                                  f"{{ device {{ id }} {E} }} }}", lambda w, v: {"v": v}),
    "updatePushTarget.installationId": (f"mutation M($v: String) {{ updatePushTarget(installationId: $v) "
                                        f"{{ device {{ id }} {E} }} }}", lambda w, v: {"v": v}),
    "updateNotificationPreferences.timezone": (f"mutation M($v: String) {{ updateNotificationPreferences(timezone: $v) "
                                               f"{{ preferences {{ timezone }} {E} }} }}", lambda w, v: {"v": v}),
    "updateNotificationPreferences.quietHours": (
        "mutation M($v: String!) { updateNotificationPreferences(quietHours: {start: $v, end: \"07:00\"}) "
        f"{{ preferences {{ timezone }} {E} }} }}", lambda w, v: {"v": v}),
}

# strings that are legitimately accepted (and then the database changes): only "must not crash" is checked
MAY_SUCCEED = {
    ("sendMessage.text", "rtl-override"), ("sendMessage.text", "newlines"),
    ("editMessage.text", "rtl-override"), ("editMessage.text", "newlines"),
    ("sendMessage.attachment.name", "rtl-override"), ("sendMessage.attachment.name", "newlines"),
    ("sendMessage.attachment.name", "zero-width"), ("sendMessage.attachment.name", "spaces"),
    ("sendMessage.clientMsgId", "spaces"),  # printable
    ("sendMoney.memo", "empty"), ("sendMoney.memo", "spaces"), ("sendMoney.memo", "newlines"),
    ("sendMoney.memo", "zero-width"),
    ("updatePushTarget.fcmToken", "empty"), ("updatePushTarget.fcmToken", "spaces"),
    ("updatePushTarget.fcmToken", "zero-width"),
    ("updatePushTarget.installationId", "empty"), ("updatePushTarget.installationId", "spaces"),
    ("updatePushTarget.installationId", "zero-width"),
}

# a caller with no token is refused before any argument is read
NEEDS_NO_USER = {"requestLoginCode.phone", "loginWithCode.code", "loginWithPassword.password",
                 "loginWithPassword.phone", "refreshTokens.refreshToken"}


def _payload(response):
    assert "INTERNAL_ERROR" not in json.dumps(response), response
    if response.get("errors"):
        return None
    (payload,) = response["data"].values()
    return payload


@pytest.mark.parametrize("op", sorted(STRING_ARGS))
def test_evil_strings_get_a_stable_code_and_change_nothing(gql, world, op):
    document, variables = STRING_ARGS[op]
    refused = [name for name in EVIL_STRINGS if (op, name) not in MAY_SUCCEED]
    problems = {}
    before = snapshot()
    for name in refused:
        payload = _payload(gql(document, variables(world, EVIL_STRINGS[name]), token=world.ta))
        if payload is None or not payload["errors"] or not payload["errors"][0]["code"]:
            problems[name] = payload
    assert problems == {}
    assert snapshot() == before, f"one of {refused} changed the database"
    for name in set(EVIL_STRINGS) - set(refused):  # accepted, but never a crash
        _payload(gql(document, variables(world, EVIL_STRINGS[name]), token=world.ta))


# (document, variables) where a value of the wrong type is passed: a GraphQL error with a stable code
WRONG_TYPES = [
    ("mutation M($v: Int!) { markConversationRead(conversationId: \"x\", seq: $v) { errors { code } } }", 1.5),
    ("mutation M($v: Int!) { markConversationRead(conversationId: \"x\", seq: $v) { errors { code } } }", "1"),
    ("mutation M($v: Int!) { markConversationRead(conversationId: \"x\", seq: $v) { errors { code } } }", 2**40),
    ("mutation M($v: Boolean!) { muteConversation(conversationId: \"x\", muted: $v) { errors { code } } }", "yes"),
    ("mutation M($v: [ID!]!) { createGroup(title: \"t\", memberIds: $v) { errors { code } } }", [None]),
    ("mutation M($v: [ID!]!) { createGroup(title: \"t\", memberIds: $v) { errors { code } } }", {"a": 1}),
    ("mutation M($v: MemberRole!) { setMemberRole(conversationId: \"x\", userId: \"y\", role: $v) "
     "{ errors { code } } }", "OWNER2"),
    ("mutation M($v: SendMessageInput!) { sendMessage(input: $v) { errors { code } } }", {"text": "no ids"}),
    ("mutation M($v: String!) { setPassword(password: $v) { errors { code } } }", None),
]


@pytest.mark.parametrize("document,value", WRONG_TYPES)
def test_wrong_types_are_refused_before_anything_runs(gql, world, document, value):
    before = snapshot()
    response = gql(document, {"v": value}, token=world.ta)
    codes = [e["extensions"]["code"] for e in response.get("errors") or []]
    assert codes and set(codes) <= {"GRAPHQL_VALIDATION_FAILED", "BAD_USER_INPUT"}, response
    assert snapshot() == before


SEND_MONEY = ("mutation M($a: Fen!, $r: ID!, $k: String!) { sendMoney(recipientId: $r, amount: $a, "
              "idempotencyKey: $k) { replayed errors { field code } } }")
TOP_UP = "mutation M($a: Fen!, $k: String!) { topUp(amount: $a, idempotencyKey: $k) { replayed errors { field code } } }"
WITHDRAW = ("mutation M($a: Fen!, $k: String!) { withdraw(amount: $a, idempotencyKey: $k) "
            "{ replayed errors { field code } } }")
BAD_AMOUNTS = {"zero": 0, "negative": -100, "float": 100.5, "whole-float": 100.0, "string": "100", "bool": True,
               "huge": 10**30, "int64": 2**63, "null-list": [100], "object": {"fen": 100}, "nan-string": "NaN",
               "exp": 1e308}


@pytest.mark.parametrize("document", [SEND_MONEY, TOP_UP, WITHDRAW], ids=["sendMoney", "topUp", "withdraw"])
def test_absurd_amounts_are_refused_and_no_money_moves(gql, world, document):
    problems = {}
    for i, (name, amount) in enumerate(BAD_AMOUNTS.items()):
        before = snapshot()
        response = gql(document, {"a": amount, "r": world.gid("User", world.bob.pk), "k": f"amount-case-{i:03d}"},
                       token=world.ta)
        payload = _payload(response)
        codes = [e["code"] for e in payload["errors"]] if payload else \
            [e["extensions"]["code"] for e in response["errors"]]
        if not set(codes) & {"AMOUNT_INVALID", "AMOUNT_TOO_LARGE", "GRAPHQL_VALIDATION_FAILED"}:
            problems[name] = response
        if snapshot() != before:
            problems[name] = "money moved"
    assert problems == {}


def test_literal_amounts_in_the_document_are_checked_too(gql, world):
    before = snapshot()
    for literal in ("100.5", "\"100\"", "-1", "99999999999999999999999999", "null", "[1]", "{a: 1}", "BOGUS"):
        response = gql(f"mutation {{ topUp(amount: {literal}, idempotencyKey: \"literal-1234\") "
                       "{ errors { code } } }", token=world.ta)
        text = json.dumps(response)
        assert "INTERNAL_ERROR" not in text and ("AMOUNT_" in text or "GRAPHQL_VALIDATION_FAILED" in text), literal
    assert snapshot() == before


def test_a_huge_attachment_size_cannot_break_history_for_everyone(gql, world):
    """A client may describe a file of any size; whatever is accepted must be readable back over GraphQL."""
    doc = ("mutation M($s: Int, $c: ID!) { sendMessage(input: {conversationId: $c, clientMsgId: \"big-1\", kind: FILE,"
           " attachment: {url: \"https://cdn.example/f\", name: \"f.bin\", size: $s}}) { errors { code } } }")
    assert gql(doc, {"s": 2**31 - 1, "c": world.gid("Conversation", world.direct)}, token=world.ta)["data"]
    history = gql("query Q($c: ID!) { messages(conversationId: $c) { edges { node { attachment { size } } } } }",
                  {"c": world.gid("Conversation", world.direct)}, token=world.tb)
    assert "errors" not in history, history


def _cursor(text: str) -> str:
    import base64

    return base64.urlsafe_b64encode(text.encode()).decode()


HUGE = "9" * 30
CURSOR_QUERIES = {
    "messages.after": ("query Q($c: ID!, $k: String) { messages(conversationId: $c, after: $k) { edges { cursor } } }",
                       f"seq:{HUGE}"),
    "messages.before": ("query Q($c: ID!, $k: String) { messages(conversationId: $c, before: $k) "
                        "{ edges { cursor } } }", f"seq:{HUGE}"),
    "conversationMembers.after": ("query Q($c: ID!, $k: String) { conversationMembers(conversationId: $c, after: $k) "
                                  "{ edges { cursor } } }", f"member:{HUGE}"),
    "myConversations.after": ("query Q($k: String) { myConversations(after: $k) { edges { cursor } } }",
                              f"activity:2026-01-01T00:00:00+00:00|{HUGE}"),
    "statement.after": ("query Q($k: String) { myWallet { statement(after: $k) { edges { cursor } } } }",
                        f"statement:{HUGE}"),
    "notifications.after": ("query Q($k: String) { notifications(after: $k) { edges { cursor } } }",
                            f"notification:{HUGE}"),
}


@pytest.mark.parametrize("name", sorted(CURSOR_QUERIES))
def test_forged_cursors_are_refused_or_empty_never_a_crash(gql, world, name):
    document, huge = CURSOR_QUERIES[name]
    forged = [_cursor(huge), _cursor("seq:-1"), _cursor("x:1"), "\u0000", "%%%", "Q" * 10_000,
              _cursor("activity:2026-01-01T00:00:00|5"), _cursor("activity:9999-12-31T23:59:59+14:00|5"),
              _cursor("activity:|5"), _cursor("activity:2026-01-01|-5")]
    for cursor in forged:
        response = gql(document, {"c": world.gid("Conversation", world.group), "k": cursor}, token=world.ta)
        codes = [e["extensions"]["code"] for e in response.get("errors") or []]
        assert codes in ([], ["INVALID_CURSOR"]), (cursor[:40], response)
