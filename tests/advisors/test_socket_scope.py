"""Over the socket, a manager cannot read or write another manager's customer's conversation."""

import pytest
from channels.db import database_sync_to_async

from backend.advisors.models import CustomerRecord
from backend.core.ids import encode_id
from tests.chat.conftest import token_for
from tests.chat.test_socket_chat import open_socket

from .conftest import assign, new_manager, new_user

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@database_sync_to_async
def setup():
    mia, max_ = new_manager("Mia"), new_manager("Max")
    ann = new_user("Ann")
    assign(ann, mia)
    conversation_id = CustomerRecord.objects.get(customer=ann).conversation_id
    return token_for(ann), token_for(mia), token_for(max_), encode_id("Conversation", conversation_id)


async def frame_of(ws, wanted, timeout=3):
    while True:
        frame = await ws.receive_json_from(timeout=timeout)
        if frame["type"] in wanted:
            return frame


async def test_other_manager_gets_not_found_and_hears_nothing():
    t_ann, t_mia, t_max, conv = await setup()
    w_ann, w_mia, w_max = await open_socket(t_ann), await open_socket(t_mia), await open_socket(t_max)
    await w_ann.send_json_to({"type": "send", "id": "s1", "conversation_id": conv, "client_msg_id": "a1",
                              "text": "my balance question"})
    assert (await frame_of(w_ann, {"ack"}))["seq"] >= 1
    assert (await frame_of(w_mia, {"message"}))["message"]["body"] == "my balance question"
    await w_max.send_json_to({"type": "send", "id": "x", "conversation_id": conv, "client_msg_id": "m1",
                              "text": "hello, I am your manager"})
    error = await frame_of(w_max, {"error", "ack"})
    assert error["type"] == "error" and error["code"] == "NOT_FOUND"
    await w_max.send_json_to({"type": "resume", "id": "r", "conversations": {conv: 0}})
    done = await frame_of(w_max, {"resume.done", "message", "error"})
    assert done["type"] == "resume.done" and done["not_found"] == [conv] and done["conversations"] == {}
    # and when Ann writes again, only her manager hears it
    await w_ann.send_json_to({"type": "send", "id": "s2", "conversation_id": conv, "client_msg_id": "a2",
                              "text": "second"})
    assert (await frame_of(w_mia, {"message"}))["message"]["body"] == "second"
    assert await w_max.receive_nothing(timeout=0.3)
    for ws in (w_ann, w_mia, w_max):
        await ws.disconnect()
