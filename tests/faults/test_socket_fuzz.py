"""Socket fuzzing against a live socket on a real Daphne.

A seeded generator (reproducible: FAULTS_SEED picks another run) throws random and mutated frames at one
socket: wrong JSON types in every field, huge sizes, deep nesting, lone surrogates, binary frames, unknown
types, frames in the wrong order (`send` before `auth`), `resume` with absurd cursors (negative, huge,
strings, floats, NaN/Infinity). Every frame the server sends back must match its documented schema and carry
a documented error code; a frame built to be invalid must be answered with an error (or, before `auth`, a
documented close code). Meanwhile a bystander on the same node keeps receiving every message of its
conversation, gapless, and the node logs no traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
from pathlib import Path

import pytest
import websockets

from backend.chat import services

from .conftest import Client, History, gid, new_user, token_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

DOC = Path(__file__).resolve().parents[2] / "docs" / "websocket-protocol.md"
SEED = int(os.environ.get("FAULTS_SEED", "20261123"))
FRAMES_AFTER_AUTH = 400
CONNECTIONS_BEFORE_AUTH = 60
CLOSE_CODES = {4400, 4401, 4408, 4429, 1000}
TYPES = ["auth", "auth.refresh", "ping", "send", "read", "typing", "resume", "presence.query", "edit", "recall"]


def documented_error_codes() -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Error codes in frames", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", section))


def nasty_values(rng: random.Random, valid: dict) -> list:
    """Values of every JSON type, at the edges, plus the valid ids of this run (so some frames get deep)."""
    return [
        None, True, False, 0, -1, 1, 2**31, 2**63, 2**64 + 7, -(2**63) - 1, 10**40, 0.5, -0.0, 1e308, float("nan"),
        float("inf"), float("-inf"), "", " ", "x" * rng.choice([65, 5001, 20_000]), "\u0000", "\ud800",
        "在吗?🙂", "Q29udmVyc2F0aW9uOjE=", "VXNlcjox", "TWVzc2FnZTox", "%%%", "1' OR '1'='1", [], [1, 2],
        [[[[]]]], {}, {"seq": -1}, {"seq": "1"}, {"seq": 1, "change": 2**70}, {"a": {"b": {"c": None}}},
        valid["conversation"], valid["other_conversation"], valid["message"], valid["user"],
    ]


def random_frame(rng: random.Random, valid: dict) -> tuple[object, bool]:
    """A frame to send and whether it is certainly invalid (so it must be answered with an error)."""
    values = nasty_values(rng, valid)
    kind = rng.random()
    if kind < 0.05:
        return b"\x00\xff\xfe binary", True
    if kind < 0.10:
        return rng.choice(['{"type":', "[]", "null", "42", '"send"', "{}", '{"type": 5}', "not json",
                           '{"type":"send","id":1.5}', '{"type":"send","id":[1]}', '{"type":"\\ud800"}',
                           "[" * 40 + "]" * 40, '{"type":"ping","id":"\\udfff"}']), True
    if kind < 0.13:
        return json.dumps({"type": "send", "pad": "x" * (70 * 1024)}), True  # above our 64 KiB limit
    if kind < 0.18:
        return json.dumps({"type": rng.choice(["", "SEND", "send ", "sendd", "x" * 200, "ack", "message",
                                               "auth.ok", "error", "resume.done"]), "id": rng.randrange(100)}), True
    frame_type = rng.choice(TYPES)
    frame: dict = {"type": frame_type, "id": rng.choice([rng.randrange(10**6), f"f{rng.randrange(10**6)}"])}
    fields = {
        "auth": ["token"], "auth.refresh": ["token"], "ping": [],
        "send": ["conversation_id", "client_msg_id", "text", "kind", "attachment", "reply_to_seq", "mentions"],
        "read": ["conversation_id", "seq"], "typing": ["conversation_id"],
        "resume": ["conversations", "added_after"], "presence.query": ["user_ids"],
        "edit": ["message_id", "text"], "recall": ["message_id"],
    }[frame_type]
    invalid = frame_type == "auth"  # a second auth on an authenticated socket is an unknown frame
    for name in fields:
        choice = rng.random()
        if choice < 0.6:
            frame[name] = rng.choice(values)
        elif choice < 0.8 and frame_type == "resume" and name == "conversations":
            cursor = rng.choice([-1, -(2**63), 2**63, 2**80, "12", 1.5, float("nan"), float("inf"), None, [], {}])
            frame[name] = {rng.choice([valid["conversation"], valid["other_conversation"], "bogus"]): cursor}
            invalid = cursor is not None and not (isinstance(cursor, int) and 0 <= cursor)
            invalid = invalid or cursor is None
        # else: left out
    if frame_type == "send" and (not isinstance(frame.get("client_msg_id"), str) or not frame.get("client_msg_id")):
        invalid = True
    if frame_type in ("read", "typing") and not isinstance(frame.get("conversation_id"), str):
        invalid = True
    if frame_type in ("edit", "recall") and not isinstance(frame.get("message_id"), str):
        invalid = True
    if frame_type == "resume" and not isinstance(frame.get("conversations"), dict):
        invalid = True
    if frame_type == "presence.query" and not isinstance(frame.get("user_ids"), list):
        invalid = True
    if frame_type == "auth.refresh" and not isinstance(frame.get("token"), str):
        invalid = True
    raw = json.dumps(frame, ensure_ascii=rng.random() < 0.5)
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate goes over the wire as its JSON escape
        raw = json.dumps(frame)
    return raw, invalid


def test_fuzzed_frames_get_coded_answers_and_a_bystander_keeps_receiving(daphne_nodes):
    (node,) = daphne_nodes(1, QUANZI_CHAT_SOCKET_FRAME_BUDGET="100000", QUANZI_CHAT_SEND_LIMIT="100000",
                           QUANZI_CHAT_TYPING_LIMIT="100000")
    fuzzer, talker, bystander = new_user("Fuzz"), new_user("Talker"), new_user("Bystander")
    watched = services.open_direct_conversation(user=talker, other_user_id=bystander.pk)
    fuzzed = services.open_direct_conversation(user=fuzzer, other_user_id=talker.pk)
    first = services.send_message(conversation_id=fuzzed.pk, sender=fuzzer, client_msg_id="seed-1", text="hi")
    valid = {"conversation": gid("Conversation", fuzzed.pk), "other_conversation": gid("Conversation", watched.pk),
             "message": gid("Message", first.message.pk), "user": gid("User", talker.pk)}
    watched_gid = gid("Conversation", watched.pk)
    tokens = {u: token_for(u) for u in (fuzzer, talker, bystander)}
    codes = documented_error_codes()
    rng = random.Random(SEED)
    history = History()
    failures: list[str] = []

    async def answers_until_pong(client: Client, marker: str) -> list[dict]:
        await client.send({"type": "ping", "id": marker})
        return await client.until(lambda f: f["type"] == "pong" and f.get("id") == marker, 20)

    async def main() -> int:
        fuzz = Client("fuzzer", tokens[fuzzer], history)
        talk = Client("talker", tokens[talker], history)
        watch = Client("bystander", tokens[bystander], history)
        for client in (fuzz, talk, watch):
            await client.connect(node)
        said = 0
        for n in range(FRAMES_AFTER_AUTH):
            raw, invalid = random_frame(rng, valid)
            await fuzz.ws.send(raw)
            answers = await answers_until_pong(fuzz, f"sentinel-{n}")
            replies = [f for f in answers[:-1] if f["type"] not in ("message", "message.updated", "card.updated")]
            for frame in replies:
                if frame["type"] == "error" and (frame["code"] not in codes or frame["code"] == "INTERNAL_ERROR"):
                    failures.append(f"frame {n} {raw!r:.300} → {frame}")
            if invalid and not any(f["type"] == "error" for f in replies):
                failures.append(f"frame {n} {raw!r:.300} was invalid but got {replies}")
            if n % 20 == 0:  # the bystander's conversation goes on throughout
                said += 1
                ack = await talk.send_message(watched_gid, f"t-{said}", f"still here {said}")
                assert ack["type"] == "ack", ack
        for client in (fuzz, talk):
            await client.close()
        await watch.until(lambda f: f["type"] == "message" and f["message"]["seq"] == said, 20)
        await watch.close()
        return said

    said = asyncio.run(main())
    assert not failures, "\n".join(failures[:20])
    history.check_gapless("bystander", watched_gid, said)
    output = node.output()
    assert "Traceback" not in output and "ERROR" not in output, output[-5000:]


def test_fuzzed_first_frames_get_a_coded_error_and_a_documented_close(daphne_nodes):
    """Before `auth`: anything else is answered with an error frame and a close code from the table."""
    (node,) = daphne_nodes(1)
    user = new_user("Early")
    token = token_for(user)
    codes = documented_error_codes()
    rng = random.Random(SEED + 1)
    valid = {"conversation": "Q29udmVyc2F0aW9uOjE=", "other_conversation": "x", "message": "y", "user": "z"}
    outcomes: list[tuple[object, list[dict], int | None]] = []

    async def attempt(raw) -> tuple[list[dict], int | None]:
        async with websockets.connect(node.ws, max_size=None) as ws:
            await ws.send(raw)
            frames = []
            try:
                while True:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    frames.append(frame)
                    if frame["type"] == "auth.ok":
                        return frames, None
            except websockets.ConnectionClosed as closed:
                return frames, closed.rcvd.code if closed.rcvd else None

    async def main():
        for n in range(CONNECTIONS_BEFORE_AUTH):
            raw, _ = random_frame(rng, valid)
            try:
                frame = json.loads(raw)
            except ValueError:
                frame = None
            if n % 3 == 0 and isinstance(frame, dict):  # send before auth, and auth with broken tokens
                frame["type"] = "auth"
                if rng.random() < 0.5:
                    frame["token"] = rng.choice([None, 1, [], {}, "", "x" * 100, token[:-3] + "abc", token + "x"])
                raw = json.dumps(frame)
            frames, code = await attempt(raw)
            outcomes.append((raw, frames, code))
        # a good first frame still works on this node afterwards
        frames, code = await attempt(json.dumps({"type": "auth", "token": token}))
        assert frames[-1]["type"] == "auth.ok", frames

    asyncio.run(main())
    for raw, frames, code in outcomes:
        assert frames, f"{raw!r:.200}: closed {code} without an error frame"
        for frame in frames:
            if frame["type"] == "auth.ok":
                break
            assert frame["type"] == "error" and frame["code"] in codes and frame["code"] != "INTERNAL_ERROR", \
                (raw, frame)
        else:
            assert code in CLOSE_CODES, f"{raw!r:.200}: closed with undocumented code {code} after {frames}"
    output = node.output()
    assert "Traceback" not in output and "ERROR" not in output, output[-5000:]


def test_a_text_frame_that_is_not_utf8_drops_that_connection_and_the_node_carries_on(daphne_nodes):
    """Invalid UTF-8 in a text frame never reaches our code: Daphne (autobahn) fails the connection by dropping
    TCP without a close frame (the client sees 1006), as it does above its 1 MiB limit — the documented close.
    Other sockets on the node are untouched."""
    (node,) = daphne_nodes(1)
    ada, bob = new_user("Ada"), new_user("Bob")
    conversation = gid("Conversation", services.open_direct_conversation(user=ada, other_user_id=bob.pk).pk)
    history = History()
    a, b = Client("a", token_for(ada), history), Client("b", token_for(bob), history)

    async def main():
        await a.connect(node)
        await b.connect(node)
        codes = []
        for payload in (b'{"type":"ping","id":"\xff\xfe"}', b"\xc3\x28", b"\xed\xa0\x80"):
            async with websockets.connect(node.ws) as ws:
                await ws.send(payload, text=True)
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 10)
                codes.append(closed.value.rcvd.code if closed.value.rcvd else None)
        assert (await a.send_message(conversation, "after-1", "still fine"))["type"] == "ack"
        await b.until(lambda f: f["type"] == "message", 10)
        await a.close()
        await b.close()
        return codes

    assert asyncio.run(main()) == [None, None, None]  # no close frame: 1006 at the client
    history.check_gapless("b", conversation, 1)
    output = node.output()
    assert "Traceback" not in output, output[-3000:]
