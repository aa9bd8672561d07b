"""BOLA: every query and mutation that takes an object id answers a stranger exactly as it answers a missing
id (same data, same errors), changes nothing, and says nothing about the object. Ids of the wrong type,
garbage, negative, huge and over-long ids get that same answer."""

from __future__ import annotations

import base64

import pytest

from .conftest import MISSING_PK, leaks_phone, snapshot

pytestmark = pytest.mark.django_db

CONV = "Conversation"
MSG = "Message"

# name → (document, variables for the attacked id, type of id, pk of the victim's object)
OPERATIONS = {
    "conversation": ("query Q($id: ID!) { conversation(id: $id) { id title lastSeq } }",
                     lambda i, w: {"id": i}, CONV, lambda w: w.group),
    "messages": ("query Q($id: ID!) { messages(conversationId: $id) { edges { node { id body } } } }",
                 lambda i, w: {"id": i}, CONV, lambda w: w.group),
    "conversationMembers": (
        "query Q($id: ID!) { conversationMembers(conversationId: $id) { edges { node { user { id } } } } }",
        lambda i, w: {"id": i}, CONV, lambda w: w.group),
    "addMembers": ("mutation M($id: ID!, $u: [ID!]!) { addMembers(conversationId: $id, userIds: $u) "
                   "{ conversation { id } errors { field code message } } }",
                   lambda i, w: {"id": i, "u": [w.gid("User", w.eve.pk)]}, CONV, lambda w: w.group),
    "removeMember": ("mutation M($id: ID!, $u: ID!) { removeMember(conversationId: $id, userId: $u) "
                     "{ conversation { id } errors { field code message } } }",
                     lambda i, w: {"id": i, "u": w.gid("User", w.bob.pk)}, CONV, lambda w: w.group),
    "leaveConversation": ("mutation M($id: ID!) { leaveConversation(conversationId: $id) "
                          "{ ok errors { field code message } } }", lambda i, w: {"id": i}, CONV, lambda w: w.group),
    "renameConversation": ("mutation M($id: ID!) { renameConversation(conversationId: $id, title: \"pwned\") "
                           "{ conversation { id } errors { field code message } } }",
                           lambda i, w: {"id": i}, CONV, lambda w: w.group),
    "setMemberRole": ("mutation M($id: ID!, $u: ID!) { setMemberRole(conversationId: $id, userId: $u, role: ADMIN) "
                      "{ conversation { id } errors { field code message } } }",
                      lambda i, w: {"id": i, "u": w.gid("User", w.bob.pk)}, CONV, lambda w: w.group),
    "muteConversation": ("mutation M($id: ID!) { muteConversation(conversationId: $id, muted: true) "
                         "{ conversation { id } errors { field code message } } }",
                         lambda i, w: {"id": i}, CONV, lambda w: w.group),
    "markConversationRead": ("mutation M($id: ID!) { markConversationRead(conversationId: $id, seq: 1) "
                             "{ conversation { id } errors { field code message } } }",
                             lambda i, w: {"id": i}, CONV, lambda w: w.direct),
    "sendMessage": ("mutation M($id: ID!) { sendMessage(input: {conversationId: $id, clientMsgId: \"eve-1\", "
                    "text: \"hi\"}) { message { id seq } duplicate errors { field code message } } }",
                    lambda i, w: {"id": i}, CONV, lambda w: w.group),
    "sendMessage.replayOfAdasClientMsgId": (
        "mutation M($id: ID!) { sendMessage(input: {conversationId: $id, clientMsgId: \"ada-1\", text: \"x\"}) "
        "{ message { id seq body } duplicate errors { field code message } } }",
        lambda i, w: {"id": i}, CONV, lambda w: w.group),
    "editMessage": ("mutation M($id: ID!) { editMessage(messageId: $id, text: \"pwned\") "
                    "{ message { id body } errors { field code message } } }",
                    lambda i, w: {"id": i}, MSG, lambda w: w.message),
    "recallMessage": ("mutation M($id: ID!) { recallMessage(messageId: $id) "
                      "{ message { id } errors { field code message } } }",
                      lambda i, w: {"id": i}, MSG, lambda w: w.message),
    "revokeDevice": ("mutation M($id: ID!) { revokeDevice(deviceId: $id) { ok errors { field code message } } }",
                     lambda i, w: {"id": i}, "Device", lambda w: w.ada_device),
    "markNotificationsRead": ("mutation M($ids: [ID!]) { markNotificationsRead(ids: $ids) "
                              "{ marked unreadCount errors { field code message } } }",
                              lambda i, w: {"ids": [i]}, "Notification", lambda w: w.ada_notification),
}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# what an attacker may put where an id goes (the right type of id is added per operation)
GARBAGE = {
    "empty": lambda kind, w: "",
    "plain-number": lambda kind, w: "1",
    "not-base64": lambda kind, w: "%%%not base64%%%",
    "no-colon": lambda kind, w: _b64(kind),
    "zero": lambda kind, w: _b64(f"{kind}:0"),
    "negative": lambda kind, w: _b64(f"{kind}:-1"),
    "huge": lambda kind, w: _b64(f"{kind}:{10**30}"),
    "int64-overflow": lambda kind, w: _b64(f"{kind}:{2**63}"),
    "float": lambda kind, w: _b64(f"{kind}:1.5"),
    "spaces": lambda kind, w: _b64(f"{kind}: 1"),
    "nul": lambda kind, w: _b64(f"{kind}:1\x00"),
    "nul-raw": lambda kind, w: "\x00",
    "lone-surrogate": lambda kind, w: "\ud800",
    "long": lambda kind, w: "Q" * 100_000,
    "wrong-type-user": lambda kind, w: w.gid("User", w.ada.pk),
    "wrong-type-device": lambda kind, w: w.gid("Device" if kind != "Device" else CONV, w.ada_device),
    "wrong-type-message": lambda kind, w: w.gid("Message" if kind != MSG else CONV, w.message),
    "lowercase-type": lambda kind, w: w.gid(kind.lower(), 1),
}


def _run(gql, op, attacked, w, token):
    document, variables, _, _ = OPERATIONS[op]
    return gql(document, variables(attacked, w), token=token)


def _answer(response):
    """What the caller learns, minus the request-specific `locations`."""
    for error in response.get("errors") or []:
        error.pop("locations", None)
    return response


@pytest.mark.parametrize("op", sorted(OPERATIONS))
def test_a_strangers_id_is_answered_like_a_missing_one_and_changes_nothing(gql, world, op):
    _, _, kind, victim = OPERATIONS[op]
    before = snapshot()
    missing = _answer(_run(gql, op, world.gid(kind, MISSING_PK), world, world.te))
    foreign = _answer(_run(gql, op, world.gid(kind, victim(world)), world, world.te))
    assert foreign == missing
    text = str(foreign)
    assert "NOT_FOUND" in text or foreign["data"] in ({"conversation": None},) or '"marked": 0' in text \
        or "'marked': 0" in text, foreign
    assert "INTERNAL_ERROR" not in text
    assert not leaks_phone(text)
    assert snapshot() == before


@pytest.mark.parametrize("op", sorted(set(OPERATIONS) - {"sendMessage.replayOfAdasClientMsgId"}))
def test_garbage_ids_are_answered_like_a_missing_one(gql, world, op):
    _, _, kind, _ = OPERATIONS[op]
    before = snapshot()
    missing = _answer(_run(gql, op, world.gid(kind, MISSING_PK), world, world.ta))
    wrong = {name: answer for name, make in GARBAGE.items()
             if (answer := _answer(_run(gql, op, make(kind, world), world, world.ta))) != missing}
    assert wrong == {}, f"expected {missing}"
    assert snapshot() == before


def test_the_owner_can_do_what_the_stranger_could_not(gql, world):
    """The attacks above are meaningful: with Ada's own token the same ids work."""
    ok = gql(OPERATIONS["messages"][0], {"id": world.gid(CONV, world.group)}, token=world.ta)
    assert [e["node"]["body"] for e in ok["data"]["messages"]["edges"]][-1] == "hello family"
    revoked = gql(OPERATIONS["revokeDevice"][0], {"id": world.gid("Device", world.ada_device)}, token=world.ta)
    assert revoked["data"]["revokeDevice"] == {"ok": True, "errors": []}
    marked = gql(OPERATIONS["markNotificationsRead"][0], {"ids": [world.gid("Notification", world.ada_notification)]},
                 token=world.ta)
    assert marked["data"]["markNotificationsRead"]["marked"] == 1


def test_a_removed_member_loses_access_like_a_stranger(gql, world):
    from backend.chat import services

    services.remove_member(conversation_id=world.group, actor=world.ada, user_id=world.bob.pk)
    for op in ("messages", "conversationMembers", "sendMessage", "editMessage"):
        _, _, kind, victim = OPERATIONS[op]
        missing = _answer(_run(gql, op, world.gid(kind, MISSING_PK), world, world.tb))
        assert _answer(_run(gql, op, world.gid(kind, victim(world)), world, world.tb)) == missing, op


def test_a_member_added_later_sees_no_earlier_history_however_they_page(gql, world):
    import base64

    from backend.chat import services

    from .conftest import befriend

    befriend(world.ada, world.eve)  # Ada may add only people she may reach
    services.add_members(conversation_id=world.group, actor=world.ada, user_ids=[world.eve.pk])
    c = world.gid(CONV, world.group)
    k, k2 = (base64.urlsafe_b64encode(raw).decode() for raw in (b"seq:0", b"seq:3"))
    seen = []
    for args in ("", "last: 100", "first: 100", f'first: 100, after: "{k}"', f'last: 100, before: "{k2}"'):
        document = (f"query Q($c: ID!) {{ messages(conversationId: $c{', ' if args else ''}{args}) "
                    "{ edges { node { seq body } } } conversation(id: $c) { lastMessage { body } } }")
        seen.append(gql(document, {"c": c}, token=world.te))
    assert all("errors" not in r for r in seen), seen
    assert "hello family" not in str(seen)
    assert seen[0]["data"]["messages"]["edges"], "the announcement of Eve's arrival is visible"
