"""The socket under attack: foreign and garbage ids, wrong types, NUL and lone surrogates, huge values in
every frame type. Each frame gets an error frame with a documented code (a stranger's id exactly the same
one as a missing id), the socket stays usable, nobody else hears anything, and the database is unchanged."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from backend.asgi import application
from backend.wallet import services as wallet

from .conftest import MISSING_PK, befriend, build_world, leaks_phone, snapshot

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

DOCUMENTED = {"MALFORMED_FRAME", "FRAME_TOO_LARGE", "UNKNOWN_TYPE", "RATE_LIMITED", "NOT_FOUND",
              "INVALID_CLIENT_MSG_ID", "EMPTY_MESSAGE", "MESSAGE_TOO_LONG", "INVALID_TEXT", "INVALID_KIND",
              "INVALID_ATTACHMENT", "INVALID_REPLY", "INVALID_MENTIONS", "CLIENT_MSG_ID_REUSED", "INVALID_SEQ",
              "INVALID_RESUME", "INVALID_USER_IDS", "NOT_ALLOWED"}


class Socket:
    def __init__(self, ws):
        self.ws = ws

    async def send_raw(self, text: str) -> None:
        await self.ws.send_to(text_data=text)

    async def send(self, frame: dict) -> None:
        await self.send_raw(json.dumps(frame))

    async def frame(self, timeout=3) -> dict:
        text = await self.ws.receive_from(timeout=timeout)
        text.encode("utf-8")  # Daphne must be able to put it on the wire
        return json.loads(text)

    async def drain(self) -> list[dict]:
        frames = []
        while not await self.ws.receive_nothing(timeout=0.3):
            frames.append(await self.frame())
        return frames

    async def answer(self, frame: dict | str) -> dict:
        """Send one frame, return its answer, and prove the socket still works."""
        await (self.send_raw(frame) if isinstance(frame, str) else self.send(frame))
        answer = await self.frame()
        await self.send({"type": "ping", "id": "alive"})
        assert await self.frame() == {"type": "pong", "id": "alive"}, f"socket broken after {str(frame)[:200]}"
        return answer


async def open_socket(token) -> Socket:
    ws = WebsocketCommunicator(application, "/ws/")
    assert (await ws.connect())[0]
    socket = Socket(ws)
    await socket.send({"type": "auth", "token": token})
    assert (await socket.frame())["type"] == "auth.ok"
    return socket


def _targets(w):
    """frame builder(conversation id, message id) → every frame that names an object."""
    return {
        "send": lambda c, m: {"type": "send", "id": 1, "conversation_id": c, "client_msg_id": "eve-x", "text": "hi"},
        "read": lambda c, m: {"type": "read", "id": 2, "conversation_id": c, "seq": 1},
        "typing": lambda c, m: {"type": "typing", "id": 3, "conversation_id": c},
        "edit": lambda c, m: {"type": "edit", "id": 4, "message_id": m, "text": "pwned"},
        "recall": lambda c, m: {"type": "recall", "id": 5, "message_id": m},
        "resume": lambda c, m: {"type": "resume", "id": 6, "conversations": {c: 0}},
    }


def _normalise(answer: dict, foreign: str, missing: str) -> dict:
    answer = {k: v for k, v in answer.items() if k != "added_cursor"}  # resume.done's cursor is the time
    return json.loads(json.dumps(answer).replace(foreign, "<ID>").replace(missing, "<ID>"))


BIG = 10**30
GARBAGE_FRAMES = [
    {"type": "send", "conversation_id": None, "client_msg_id": "g1", "text": "x"},
    {"type": "send", "conversation_id": 1, "client_msg_id": "g1", "text": "x"},
    {"type": "send", "conversation_id": ["Q29udmVyc2F0aW9uOjE="], "client_msg_id": "g1", "text": "x"},
    {"type": "send", "conversation_id": {"a": 1}, "client_msg_id": "g1", "text": "x"},
    {"type": "send", "conversation_id": "", "client_msg_id": "g1", "text": "x"},
    {"type": "send", "conversation_id": "\u0000", "client_msg_id": "g1", "text": "x"},
    {"type": "send", "conversation_id": "Q" * 60_000, "client_msg_id": "g1", "text": "x"},
    {"type": "send", "conversation_id": "<DIRECT>", "client_msg_id": 123, "text": "x"},
    {"type": "send", "conversation_id": "<DIRECT>", "client_msg_id": "g\u0000", "text": "x"},
    {"type": "send", "conversation_id": "<DIRECT>", "client_msg_id": "g2", "text": "a\u0000b"},
    {"type": "send", "conversation_id": "<DIRECT>", "client_msg_id": "g3", "text": ["x"]},
    {"type": "send", "conversation_id": "<DIRECT>", "client_msg_id": "g4", "text": {"x": 1}},
    {"type": "send", "conversation_id": "<DIRECT>", "client_msg_id": "g5", "text": "\u200b\u200b"},
    {"type": "send", "conversation_id": "<DIRECT>", "client_msg_id": "g6", "text": "x", "kind": ["text"]},
    {"type": "send", "conversation_id": "<DIRECT>", "client_msg_id": "g7", "text": "x", "kind": "card"},
    {"type": "send", "conversation_id": "<DIRECT>", "client_msg_id": "g8", "kind": "file", "attachment": "x"},
    {"type": "send", "conversation_id": "<DIRECT>", "client_msg_id": "g9", "kind": "file",
     "attachment": {"url": "https://cdn.example/f", "name": "f", "size": BIG}},
    {"type": "send", "conversation_id": "<DIRECT>", "client_msg_id": "g9", "kind": "file",
     "attachment": {"url": "https://cdn.example/f", "name": "f\u0000"}},
    {"type": "send", "conversation_id": "<DIRECT>", "client_msg_id": "g9", "kind": "image",
     "attachment": {"url": "javascript:alert(1)"}},
    {"type": "send", "conversation_id": "<DIRECT>", "client_msg_id": "ga", "text": "x", "reply_to_seq": BIG},
    {"type": "send", "conversation_id": "<DIRECT>", "client_msg_id": "gb", "text": "x", "reply_to_seq": "1"},
    {"type": "send", "conversation_id": "<DIRECT>", "client_msg_id": "gc", "text": "x", "mentions": "x"},
    {"type": "send", "conversation_id": "<DIRECT>", "client_msg_id": "gd", "text": "x", "mentions": [None]},
    {"type": "send", "conversation_id": "<DIRECT>", "client_msg_id": "ge", "text": "x", "mentions": ["<EVE>"]},
    {"type": "send", "conversation_id": "<DIRECT>", "client_msg_id": "gf", "text": "x",
     "mentions": ["eA=="] * 8000},
    {"type": "send", "conversation_id": "<DIRECT>", "client_msg_id": "gg", "text": "x" * 70_000},
    {"type": "read", "conversation_id": "<DIRECT>", "seq": -1},
    {"type": "read", "conversation_id": "<DIRECT>", "seq": 1.5},
    {"type": "read", "conversation_id": "<DIRECT>", "seq": "1"},
    {"type": "read", "conversation_id": "<DIRECT>", "seq": True},
    {"type": "read", "conversation_id": "<DIRECT>", "seq": None},
    {"type": "edit", "message_id": "<BOB_MSG>", "text": "not mine"},
    {"type": "edit", "message_id": None, "text": "x"},
    {"type": "edit", "message_id": "<ADA_MSG>", "text": "a\u0000b"},
    {"type": "edit", "message_id": "<ADA_MSG>", "text": ""},
    {"type": "edit", "message_id": "<ADA_MSG>", "text": 123},
    {"type": "edit", "message_id": "<ADA_MSG>"},
    {"type": "recall", "message_id": "<BOB_MSG>"},
    {"type": "recall", "message_id": 5},
    {"type": "resume", "conversations": []},
    {"type": "resume", "conversations": "x"},
    {"type": "resume", "conversations": {"<DIRECT>": -1}},
    {"type": "resume", "conversations": {"<DIRECT>": {"seq": "a"}}},
    {"type": "resume", "conversations": {"<DIRECT>": {"seq": 0, "change": -5}}},
    {"type": "resume", "conversations": {f"c{i}": 0 for i in range(501)}},
    {"type": "presence.query", "user_ids": "x"},
    {"type": "presence.query", "user_ids": ["eA=="] * 201},
    {"type": "presence.query", "user_ids": [123]},
    {"type": "presence.query", "user_ids": {"a": 1}},
    {"type": "typing", "conversation_id": 3.5},
    {"type": "no.such.type"},
    {"type": "ping", "id": [1]},
    {"type": "ping", "id": {"a": 1}},
]

# raw text frames: lone surrogates (valid JSON escapes, invalid UTF-8 once decoded), not-JSON, not-objects
RAW_FRAMES = [
    '{"type":"send","id":"\\ud800","conversation_id":"<DIRECT>","client_msg_id":"s1","text":"x"}',
    '{"type":"send","conversation_id":"<DIRECT>","client_msg_id":"s2","text":"a\\udfffb"}',
    '{"type":"\\ud800"}',
    '{"type":"resume","conversations":{"\\ud800":0}}',
    '{"type":"ping","id":"\\udc00"}',
    "not json",
    "[]",
    '"just a string"',
    '{"type": 5}',
    "{" * 10_000,
]


async def test_a_strangers_ids_get_the_same_answer_as_missing_ones_and_nobody_hears_anything():
    w = await database_sync_to_async(build_world)()
    ada, eve = await open_socket(w.ta), await open_socket(w.te)
    before = await database_sync_to_async(snapshot)()
    for name, build in _targets(w).items():
        foreign_c, foreign_m = w.gid("Conversation", w.group), w.gid("Message", w.message)
        missing_c, missing_m = w.gid("Conversation", MISSING_PK), w.gid("Message", MISSING_PK)
        foreign = await eve.answer(build(foreign_c, foreign_m))
        missing = await eve.answer(build(missing_c, missing_m))
        assert _normalise(foreign, foreign_c, foreign_m) == _normalise(missing, missing_c, missing_m), name
        assert foreign["type"] == "resume.done" and foreign["not_found"] == [foreign_c] if name == "resume" \
            else foreign["code"] == "NOT_FOUND", foreign
    presence = await eve.answer({"type": "presence.query", "id": 7, "user_ids": [w.gid("User", w.ada.pk)]})
    assert presence == {"type": "presence.state", "id": 7, "users": []}  # Ada is online, but Eve may not know
    assert await ada.ws.receive_nothing(timeout=0.2)  # no message, typing, read receipt or edit reached Ada
    assert await database_sync_to_async(snapshot)() == before
    await ada.ws.disconnect()
    await eve.ws.disconnect()


async def test_garbage_frames_get_documented_error_codes_and_the_socket_stays_usable(settings):
    settings.QUANZI_CHAT = {"SOCKET_FRAME_BUDGET": 10_000}  # hundreds of frames at once: not the budget's test
    w = await database_sync_to_async(build_world)()
    ada, bob = await open_socket(w.ta), await open_socket(w.tb)
    for socket in (ada, bob):
        await socket.drain()  # what the connects rang (presence)
    before = await database_sync_to_async(snapshot)()
    fill = {"<DIRECT>": w.gid("Conversation", w.direct), "<BOB_MSG>": w.gid("Message", w.bob_message),
            "<ADA_MSG>": w.gid("Message", w.message), "<EVE>": w.gid("User", w.eve.pk)}

    def filled(text: str) -> str:
        for key, value in fill.items():
            text = text.replace(key, value)
        return text

    wrong = {}
    for frame in [filled(json.dumps(f)) for f in GARBAGE_FRAMES] + [filled(raw) for raw in RAW_FRAMES]:
        answer = await ada.answer(frame)
        if answer.get("type") != "error" or answer.get("code") not in DOCUMENTED:
            wrong[frame[:120]] = answer
    assert wrong == {}
    assert await database_sync_to_async(snapshot)() == before
    assert await bob.ws.receive_nothing(timeout=0.2)  # nothing Ada botched reached Bob
    await ada.ws.disconnect()
    await bob.ws.disconnect()


async def test_socket_frames_never_carry_another_users_phone():
    w = await database_sync_to_async(build_world)()
    bob = await open_socket(w.tb)
    ada = await open_socket(w.ta)
    c = w.gid("Conversation", w.group)
    await ada.send({"type": "send", "id": 1, "conversation_id": c, "client_msg_id": "p1", "text": "hi @Bob",
                    "mentions": [w.gid("User", w.bob.pk)], "reply_to_seq": 1})
    await ada.send({"type": "edit", "id": 2, "message_id": w.gid("Message", w.message), "text": "edited"})
    await ada.send({"type": "read", "id": 3, "conversation_id": c, "seq": 2})
    await ada.send({"type": "typing", "conversation_id": c})
    await database_sync_to_async(wallet.send_money)(sender=w.ada, recipient_id=w.bob.pk, amount=4321,
                                                    idempotency_key="socket-privacy-1", memo="thanks")
    await bob.send({"type": "presence.query", "id": 4, "user_ids": [w.gid("User", w.ada.pk)]})
    await bob.send({"type": "resume", "id": 5, "conversations": {c: 0, w.gid("Conversation", w.direct): 0}})
    frames = await bob.drain()
    kinds = {f["type"] for f in frames}
    assert {"message", "message.updated", "presence.state", "resume.done"} <= kinds, kinds
    text = json.dumps(frames, ensure_ascii=False)
    assert "Ada" in text or w.gid("User", w.ada.pk) in text
    assert leaks_phone(text) == []
    await ada.ws.disconnect()
    await bob.ws.disconnect()


async def test_absurd_but_well_typed_numbers_are_answered_not_crashed():
    w = await database_sync_to_async(build_world)()
    ada = await open_socket(w.ta)
    await ada.drain()
    c = w.gid("Conversation", w.group)
    read = await ada.answer({"type": "read", "id": 1, "conversation_id": c, "seq": BIG})
    assert (read["type"], read["seq"], read["unread"]) == ("read.ok", 2, 0)  # capped at the newest seq
    for wanted in ({c: BIG}, {c: {"seq": 0, "change": BIG}}, {c: {"seq": BIG, "change": BIG}}):
        frames = []
        await ada.send({"type": "resume", "id": "r", "conversations": wanted})
        while (frame := await ada.frame())["type"] != "resume.done":
            frames.append(frame)
        assert frame["conversations"] == {c: {"last_seq": 2, "last_change": 0}} and frame["not_found"] == []
    await ada.ws.disconnect()


async def test_a_member_added_later_cannot_read_what_was_said_before():
    w = await database_sync_to_async(build_world)()
    from backend.chat import services

    await database_sync_to_async(befriend)(w.ada, w.eve)  # Ada may add only people she may reach
    await database_sync_to_async(services.add_members)(conversation_id=w.group, actor=w.ada, user_ids=[w.eve.pk])
    eve = await open_socket(w.te)
    await eve.drain()
    c = w.gid("Conversation", w.group)
    await eve.send({"type": "resume", "id": "r", "conversations": {c: 0}})
    frames = []
    while (frame := await eve.frame())["type"] != "resume.done":
        frames.append(frame)
    assert "hello family" not in json.dumps(frames, ensure_ascii=False)
    assert all(f["message"]["seq"] >= 3 for f in frames if f["type"] == "message"), frames
    edit = await eve.answer({"type": "recall", "id": 1, "message_id": w.gid("Message", w.message)})
    assert edit["code"] in {"NOT_FOUND", "NOT_ALLOWED"}
    await eve.ws.disconnect()
