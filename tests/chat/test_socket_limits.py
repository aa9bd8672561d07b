"""The socket's own limits: frame budget, JSON nesting, bad first frames, presence cleared however a socket
ends, camelCase error fields (in-process, no server; tests/e2e has the real Daphne)."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from backend.asgi import application
from backend.chat import consumers
from backend.core import presence

from .conftest import new_user, token_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

DEEP = "[" * 20_000 + "]" * 20_000  # 40 KB, under the frame size limit


async def connect() -> WebsocketCommunicator:
    ws = WebsocketCommunicator(application, "/ws/")
    connected, code = await ws.connect()
    assert connected, code
    return ws


async def signed_in():
    user = await database_sync_to_async(new_user)("Ada")
    ws = await connect()
    await ws.send_json_to({"type": "auth", "token": await database_sync_to_async(token_for)(user)})
    assert (await ws.receive_json_from())["type"] == "auth.ok"
    return user, ws


async def closed_with(ws) -> int:
    while True:
        output = await ws.receive_output(timeout=1)
        if output["type"] == "websocket.close":
            return output["code"]


# --- nesting ----------------------------------------------------------------------------------------------


async def test_deeply_nested_frame_gets_an_error_frame_and_the_socket_stays():
    user, ws = await signed_in()
    await ws.send_to(text_data='{"type":"ping","id":1,"x":' + DEEP + "}")
    answer = await ws.receive_json_from()
    assert answer["type"] == "error" and answer["code"] == "MALFORMED_FRAME" and "nest" in answer["message"]
    await ws.send_json_to({"type": "ping", "id": "alive"})
    assert await ws.receive_json_from() == {"type": "pong", "id": "alive"}
    assert presence.is_online(user.pk)
    await ws.disconnect()


async def test_deeply_nested_first_frame_closes_4400():
    ws = await connect()
    await ws.send_to(text_data=DEEP)
    assert (await ws.receive_json_from())["code"] == "MALFORMED_FRAME"
    assert await closed_with(ws) == consumers.CLOSE_PROTOCOL_ERROR


# --- bad first frames close at once ---------------------------------------------------------------------


async def test_binary_first_frame_closes_4400_without_waiting_for_the_auth_timeout(settings):
    settings.QUANZI = {**settings.QUANZI, "WS_AUTH_TIMEOUT_SECONDS": 30}
    ws = await connect()
    await ws.send_to(bytes_data=b"\x00\x01")
    assert (await ws.receive_json_from())["code"] == "BINARY_NOT_SUPPORTED"
    assert await closed_with(ws) == consumers.CLOSE_PROTOCOL_ERROR


async def test_oversized_first_frame_closes_4400(settings):
    settings.QUANZI = {**settings.QUANZI, "WS_AUTH_TIMEOUT_SECONDS": 30}
    ws = await connect()
    await ws.send_to(text_data=json.dumps({"type": "auth", "token": "x" * (settings.QUANZI["WS_MAX_FRAME_BYTES"])}))
    assert (await ws.receive_json_from())["code"] == "FRAME_TOO_LARGE"
    assert await closed_with(ws) == consumers.CLOSE_PROTOCOL_ERROR


async def test_oversized_frame_after_auth_keeps_the_socket(settings):
    user, ws = await signed_in()
    await ws.send_to(text_data=json.dumps({"type": "ping", "pad": "x" * settings.QUANZI["WS_MAX_FRAME_BYTES"]}))
    assert (await ws.receive_json_from())["code"] == "FRAME_TOO_LARGE"
    await ws.send_json_to({"type": "ping", "id": "alive"})
    assert await ws.receive_json_from() == {"type": "pong", "id": "alive"}
    await ws.disconnect()


# --- presence is cleared however the socket ends ----------------------------------------------------------


class _ExplodingJson:
    """json whose loads crashes (what RecursionError did): the exception escapes the consumer (Daphne: 1011)."""

    dumps = staticmethod(json.dumps)

    @staticmethod
    def loads(text):
        raise RuntimeError("parser crashed")


async def test_a_crashed_socket_clears_presence_at_once(monkeypatch):
    user, ws = await signed_in()
    assert presence.is_online(user.pk)
    monkeypatch.setattr(consumers, "json", _ExplodingJson)
    await ws.send_to(text_data='{"type":"ping"}')
    with pytest.raises(RuntimeError, match="parser crashed"):
        await ws.receive_output(timeout=2)
    assert not presence.is_online(user.pk)


async def test_after_a_crash_messages_reach_the_inbox_at_once(monkeypatch):
    """While presence wrongly said "online", a message made no inbox row and no push."""
    from backend.chat import services
    from backend.notifications.models import Notification

    user, ws = await signed_in()
    monkeypatch.setattr(consumers, "json", _ExplodingJson)
    await ws.send_to(text_data='{"type":"ping"}')
    with pytest.raises(RuntimeError):
        await ws.receive_output(timeout=2)

    def bob_writes() -> int:
        bob = new_user("Bob")
        direct = services.open_direct_conversation(user=bob, other_user_id=user.pk)
        services.send_message(conversation_id=direct.pk, sender=bob, client_msg_id="b1", kind="text", text="在吗?",
                              attachment=None, reply_to_seq=None, mention_ids=[])
        return Notification.objects.filter(recipient_id=user.pk).count()

    assert await database_sync_to_async(bob_writes)() == 1


async def test_presence_is_cleared_even_when_the_rest_of_the_disconnect_fails(monkeypatch):
    user, ws = await signed_in()

    async def broken(consumer):
        raise RuntimeError("announce failed")

    monkeypatch.setattr(consumers, "chat_socket_closed", broken)
    await ws.disconnect()
    assert not presence.is_online(user.pk)


# --- the frame budget -------------------------------------------------------------------------------------


async def test_frames_over_budget_are_rate_limited_and_the_socket_stays(settings):
    settings.QUANZI_CHAT = {"SOCKET_FRAME_BUDGET": 6, "SOCKET_FRAME_REFILL_PER_SECOND": 1}
    user, ws = await signed_in()  # the auth frame paid 1
    for i in range(5):
        await ws.send_json_to({"type": "ping", "id": i})
        assert (await ws.receive_json_from())["type"] == "pong"
    await ws.send_json_to({"type": "ping", "id": "over"})
    refused = await ws.receive_json_from()
    assert refused["code"] == "RATE_LIMITED" and refused["retry_after"] >= 1
    assert await ws.receive_nothing(timeout=1.1)  # no pong for it; a second later one token is back
    await ws.send_json_to({"type": "ping", "id": "later"})
    assert await ws.receive_json_from() == {"type": "pong", "id": "later"}
    await ws.disconnect()


async def test_resume_costs_by_the_conversations_it_names(settings):
    settings.QUANZI_CHAT = {"SOCKET_FRAME_BUDGET": 30, "SOCKET_FRAME_REFILL_PER_SECOND": 0,
                            "SOCKET_RESUME_CONVERSATIONS_PER_TOKEN": 5}
    user, ws = await signed_in()  # 29 left
    resume = {"type": "resume", "id": "r", "conversations": {f"bogus{i}": 0 for i in range(100)}}  # 1 + 20
    await ws.send_json_to(resume)
    assert (await ws.receive_json_from())["type"] == "resume.done"  # 8 left
    await ws.send_json_to({**resume, "id": "r2"})
    refused = await ws.receive_json_from()
    assert refused["code"] == "RATE_LIMITED" and refused["id"] == "r2"
    await ws.send_json_to({"type": "ping", "id": "small"})  # the refused resume took only its base token
    assert await ws.receive_json_from() == {"type": "pong", "id": "small"}
    await ws.disconnect()


async def test_persistent_flooding_closes_4429(settings):
    settings.QUANZI_CHAT = {"SOCKET_FRAME_BUDGET": 2, "SOCKET_FRAME_REFILL_PER_SECOND": 0, "SOCKET_BUDGET_STRIKES": 3}
    user, ws = await signed_in()
    await ws.send_json_to({"type": "ping"})
    assert (await ws.receive_json_from())["type"] == "pong"
    for _ in range(5):
        await ws.send_json_to({"type": "ping"})
    codes = [(await ws.receive_json_from())["code"] for _ in range(4)]
    assert codes == ["RATE_LIMITED"] * 4
    assert await closed_with(ws) == consumers.CLOSE_TOO_MANY_FRAMES
    await ws.disconnect()  # the client's side of the closing handshake
    assert not presence.is_online(user.pk)


# --- error fields are camelCase, as in GraphQL --------------------------------------------------------------


async def test_socket_error_fields_are_camel_case():
    user, ws = await signed_in()
    frames = [
        ({"type": "send", "id": 1, "conversation_id": "nope", "client_msg_id": "c1", "text": "x"}, "conversationId"),
        ({"type": "read", "id": 2, "conversation_id": "nope", "seq": 1}, "conversationId"),
        ({"type": "edit", "id": 3, "message_id": None, "text": "x"}, "messageId"),
        ({"type": "presence.query", "id": 4, "user_ids": "x"}, "userIds"),
    ]
    for frame, field in frames:
        await ws.send_json_to(frame)
        answer = await ws.receive_json_from()
        assert answer["type"] == "error" and answer["field"] == field, answer
    await ws.disconnect()
