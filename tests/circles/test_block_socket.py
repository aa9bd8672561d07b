"""Blocking on the socket: a blocked user's direct messages are acked for them but never reach the blocker,
and the blocker's own messages still flow both ways."""

import pytest
from channels.db import database_sync_to_async

from backend.chat import services as chat
from backend.circles import services
from tests.chat.conftest import token_for
from tests.chat.test_socket_chat import QUIET, messages, next_frame, open_socket

from .conftest import befriend, new_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def nothing_but_presence(ws) -> list[dict]:
    """Frames other than presence/typing/read that arrive before 0.3 s of silence."""
    seen = []
    while not await ws.receive_nothing(timeout=0.3):
        frame = await ws.receive_json_from()
        if frame["type"] not in QUIET:
            seen.append(frame)
    return seen


@database_sync_to_async
def setup():
    ada, bob = new_user("Ada"), new_user("Bob")
    befriend(ada, bob)
    conversation = chat.open_direct_conversation(user=ada, other_user_id=bob.pk)
    services.block_user(user=ada, other_id=bob.pk)
    return conversation, token_for(ada), token_for(bob)


async def test_a_blocked_users_messages_are_acked_but_never_delivered(settings):
    from backend.core.ids import encode_id

    conversation, ta, tb = await setup()
    c = encode_id("Conversation", conversation.pk)
    wa, wb = await open_socket(ta), await open_socket(tb)
    await wb.send_json_to({"type": "send", "id": 1, "conversation_id": c, "client_msg_id": "b1", "text": "hello?"})
    ack = await next_frame(wb)
    assert ack["type"] == "ack" and ack["seq"] == 1  # Bob sees an ordinary send
    assert (await messages(wb, 1))[0]["body"] == "hello?"
    assert await nothing_but_presence(wa) == []
    await wa.send_json_to({"type": "ping", "id": "hb"})  # the heartbeat compares seqs: still nothing for Ada
    assert await next_frame(wa) == {"type": "pong", "id": "hb"}
    assert await nothing_but_presence(wa) == []
    await wa.send_json_to({"type": "send", "id": 2, "conversation_id": c, "client_msg_id": "a1", "text": "hi"})
    assert (await next_frame(wa))["type"] == "ack"
    assert [m["body"] for m in await messages(wa, 1)] == ["hi"]
    assert [m["body"] for m in await messages(wb, 1)] == ["hi"]
    await wa.disconnect()
    await wb.disconnect()
