"""The chat frames on the socket (in-process): send/ack, live delivery, read, typing, resume, presence,
removal, and recovery of lost doorbells. Uses Redis as the channel layer when REDIS_URL is set."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from backend.asgi import application
from backend.chat import events, services

from .conftest import gid, new_user, token_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

QUIET = ("presence", "typing", "read")


@database_sync_to_async
def make(*names):
    users = [new_user(n) for n in names]
    return users, [token_for(u) for u in users]


async def open_socket(token):
    ws = WebsocketCommunicator(application, "/ws/")
    connected, _ = await ws.connect()
    assert connected
    await ws.send_json_to({"type": "auth", "token": token})
    assert (await ws.receive_json_from(timeout=3))["type"] == "auth.ok"
    return ws


async def next_frame(ws, *, skip=QUIET, timeout=3):
    while True:
        frame = await ws.receive_json_from(timeout=timeout)
        if frame["type"] not in skip:
            return frame


async def messages(ws, count):
    out = []
    while len(out) < count:
        frame = await next_frame(ws)
        assert frame["type"] == "message", frame
        out.append(frame["message"])
    return out


def call(fn, **kwargs):
    return database_sync_to_async(fn)(**kwargs)


async def test_send_ack_and_live_delivery_to_both_parties():
    (ada, bob), (ta, tb) = await make("Ada", "Bob")
    conversation = await call(services.open_direct_conversation, user=ada, other_user_id=bob.pk)
    c = gid("Conversation", conversation.pk)
    wa, wb = await open_socket(ta), await open_socket(tb)
    await wa.send_json_to({"type": "send", "id": "s1", "conversation_id": c, "client_msg_id": "m1", "text": "你好"})
    ack = await next_frame(wa)
    assert ack["type"] == "ack" and ack["id"] == "s1" and ack["seq"] == 1 and ack["duplicate"] is False
    (received,) = await messages(wb, 1)
    assert received["body"] == "你好" and received["seq"] == 1 and received["sender_id"] == gid("User", ada.pk)
    assert (await messages(wa, 1))[0]["seq"] == 1  # the sender's own sockets hear it too (other devices)
    # resend: same seq, flagged duplicate, nobody hears it twice
    await wa.send_json_to({"type": "send", "id": "s2", "conversation_id": c, "client_msg_id": "m1", "text": "你好"})
    again = await next_frame(wa)
    assert again["seq"] == 1 and again["duplicate"] is True
    assert await wb.receive_nothing(timeout=0.3)
    await wa.disconnect()
    await wb.disconnect()


async def test_errors_come_as_frames_and_the_socket_stays_usable():
    (ada, bob, eve), (ta, _, te) = await make("Ada", "Bob", "Eve")
    conversation = await call(services.open_direct_conversation, user=ada, other_user_id=bob.pk)
    c = gid("Conversation", conversation.pk)
    we = await open_socket(te)
    await we.send_json_to({"type": "send", "id": 1, "conversation_id": c, "client_msg_id": "x", "text": "hi"})
    assert await next_frame(we) == {"type": "error", "code": "NOT_FOUND", "message": "Not found.", "id": 1,
                                    "field": "conversationId"}
    await we.send_json_to({"type": "send", "id": 2, "conversation_id": "garbage", "text": "hi"})
    assert (await next_frame(we))["code"] == "NOT_FOUND"
    wa = await open_socket(ta)
    await wa.send_json_to({"type": "send", "id": 3, "conversation_id": c, "text": "no client id"})
    assert (await next_frame(wa))["code"] == "INVALID_CLIENT_MSG_ID"
    await wa.send_json_to({"type": "read", "id": 4, "conversation_id": c, "seq": "ten"})
    assert (await next_frame(wa))["code"] == "INVALID_SEQ"
    await wa.send_json_to({"type": "resume", "id": 5, "conversations": [1, 2]})
    assert (await next_frame(wa))["code"] == "INVALID_RESUME"
    await wa.send_json_to({"type": "send", "id": 6, "conversation_id": c, "client_msg_id": "ok", "text": "fine"})
    assert (await next_frame(wa))["type"] == "ack"
    await wa.disconnect()
    await we.disconnect()


async def test_read_receipts_and_typing(settings):
    (ada, bob), (ta, tb) = await make("Ada", "Bob")
    conversation = await call(services.open_direct_conversation, user=ada, other_user_id=bob.pk)
    c = gid("Conversation", conversation.pk)
    for i in range(3):
        await call(services.send_message, conversation_id=conversation.pk, sender=ada, client_msg_id=f"r{i}",
                   text=f"m{i}")
    wa, wb = await open_socket(ta), await open_socket(tb)
    await wb.send_json_to({"type": "read", "id": "r", "conversation_id": c, "seq": 2})
    assert await next_frame(wb, skip=("presence", "read")) == {"type": "read.ok", "id": "r", "conversation_id": c,
                                                               "seq": 2, "unread": 1}
    receipt = await next_frame(wa, skip=("presence",))
    assert receipt == {"type": "read", "conversation_id": c, "user_id": gid("User", bob.pk), "seq": 2}
    await wb.send_json_to({"type": "typing", "conversation_id": c})
    assert await next_frame(wa, skip=("presence",)) == {"type": "typing", "conversation_id": c,
                                                        "user_id": gid("User", bob.pk)}
    settings.QUANZI_CHAT = {"TYPING_LIMIT": 1}
    await wb.send_json_to({"type": "typing", "id": "t2", "conversation_id": c})
    limited = await next_frame(wb)
    assert limited["code"] == "RATE_LIMITED" and limited["id"] == "t2" and limited["retry_after"] >= 1
    await wa.disconnect()
    await wb.disconnect()


async def test_resume_replays_exactly_what_was_missed_or_asks_for_resync(settings):
    settings.QUANZI_CHAT = {"RESUME_MAX_GAP": 10}
    (ada, bob, eve), (ta, tb, te) = await make("Ada", "Bob", "Eve")
    direct = await call(services.open_direct_conversation, user=ada, other_user_id=bob.pk)
    busy = await call(services.create_group, owner=ada, title="Busy", member_ids=[bob.pk])
    secret = await call(services.open_direct_conversation, user=ada, other_user_id=eve.pk)
    for i in range(7):
        await call(services.send_message, conversation_id=direct.pk, sender=ada, client_msg_id=f"d{i}", text=f"d{i}")
    for i in range(15):
        await call(services.send_message, conversation_id=busy.pk, sender=ada, client_msg_id=f"b{i}", text=f"b{i}")
    wb = await open_socket(tb)
    c, g, s = (gid("Conversation", x.pk) for x in (direct, busy, secret))
    await wb.send_json_to({"type": "resume", "id": "r1", "conversations": {c: 3, g: 1, s: 0, "bogus": 0}})
    replay = await messages(wb, 4)
    assert [m["seq"] for m in replay] == [4, 5, 6, 7] and replay[0]["body"] == "d3"
    assert await next_frame(wb) == {"type": "resync", "conversation_id": g, "last_seq": 16}
    done = await next_frame(wb)
    assert done["type"] == "resume.done" and done["id"] == "r1"
    assert done["conversations"] == {c: {"last_seq": 7, "last_change": 0}, g: {"last_seq": 16, "last_change": 0}}
    assert sorted(done["not_found"]) == sorted([s, "bogus"])  # Eve's chat with Ada looks like a bogus id
    # live from here on, gapless
    await call(services.send_message, conversation_id=direct.pk, sender=ada, client_msg_id="live", text="live")
    assert [m["seq"] for m in await messages(wb, 1)] == [8]
    await wb.disconnect()


async def test_removed_member_stops_receiving_at_once():
    (ada, bob, cyd), (ta, tb, tc) = await make("Ada", "Bob", "Cyd")
    group = await call(services.create_group, owner=ada, title="G", member_ids=[bob.pk, cyd.pk])
    wb, wc = await open_socket(tb), await open_socket(tc)
    await call(services.send_message, conversation_id=group.pk, sender=ada, client_msg_id="1", text="before")
    assert (await messages(wc, 1))[0]["body"] == "before"
    await call(services.remove_member, conversation_id=group.pk, actor=ada, user_id=cyd.pk)
    left = await next_frame(wc)
    assert left == {"type": "conversation.left", "conversation_id": gid("Conversation", group.pk), "reason": "removed"}
    await call(services.send_message, conversation_id=group.pk, sender=ada, client_msg_id="2", text="after")
    bodies = [m["body"] for m in await messages(wb, 3)]
    assert bodies == ["before", "ada removed Cyd".replace("ada", "Ada"), "after"]
    assert await wc.receive_nothing(timeout=0.3)
    await wc.send_json_to({"type": "typing", "id": "t", "conversation_id": gid("Conversation", group.pk)})
    assert (await next_frame(wc))["code"] == "NOT_FOUND"
    await wb.disconnect()
    await wc.disconnect()


async def test_added_member_hears_from_their_join_on():
    (ada, bob), (ta, tb) = await make("Ada", "Bob")
    group = await call(services.create_group, owner=ada, title="G", member_ids=[])
    await call(services.send_message, conversation_id=group.pk, sender=ada, client_msg_id="old", text="old news")
    wb = await open_socket(tb)
    await call(services.add_members, conversation_id=group.pk, actor=ada, user_ids=[bob.pk])
    joined = await next_frame(wb)
    assert joined == {"type": "conversation.joined", "conversation_id": gid("Conversation", group.pk), "seq": 3}
    (system,) = await messages(wb, 1)
    assert system["kind"] == "system" and system["system"]["event"] == "members_added"
    await wb.disconnect()


async def test_lost_doorbells_are_recovered_in_order(monkeypatch):
    (ada, bob), (ta, tb) = await make("Ada", "Bob")
    conversation = await call(services.open_direct_conversation, user=ada, other_user_id=bob.pk)
    wb = await open_socket(tb)
    real = events.ring_users_now
    dropped = []

    def lossy(user_ids, event):
        if event["type"] == "chat.message" and event["seq"] in (1, 2, 4):
            dropped.append(event["seq"])
            return
        real(user_ids, event)

    monkeypatch.setattr(events, "ring_users_now", lossy)
    for i in range(1, 5):
        await call(services.send_message, conversation_id=conversation.pk, sender=ada, client_msg_id=f"l{i}",
                   text=f"n{i}")
    assert dropped == [1, 2, 4]
    # seq 3's doorbell reveals the gap: 1, 2, 3 come from the database, in order
    assert [m["seq"] for m in await messages(wb, 3)] == [1, 2, 3]
    assert await wb.receive_nothing(timeout=0.3)  # nothing reveals that 4 is missing...
    await wb.send_json_to({"type": "ping", "id": "hb"})  # ...until the next heartbeat compares seqs
    assert await next_frame(wb) == {"type": "pong", "id": "hb"}
    assert [m["body"] for m in await messages(wb, 1)] == ["n4"]
    await wb.disconnect()


async def test_edit_and_recall_reach_members_and_resume_reports_changes():
    (ada, bob), (ta, tb) = await make("Ada", "Bob")
    conversation = await call(services.open_direct_conversation, user=ada, other_user_id=bob.pk)
    c = gid("Conversation", conversation.pk)
    wa, wb = await open_socket(ta), await open_socket(tb)
    await wa.send_json_to({"type": "send", "id": 1, "conversation_id": c, "client_msg_id": "e1", "text": "typo"})
    ack = await next_frame(wa)
    await messages(wb, 1)
    await wa.send_json_to({"type": "edit", "id": 2, "message_id": ack["message_id"], "text": "fixed"})
    updated = await next_frame(wb)
    assert updated["type"] == "message.updated" and updated["message"]["body"] == "fixed" and updated["change"] == 1
    await wa.send_json_to({"type": "recall", "id": 3, "message_id": ack["message_id"]})
    recalled = await next_frame(wb)
    assert recalled["message"]["recalled"] is True and recalled["message"]["body"] is None
    await wb.disconnect()
    wb2 = await open_socket(tb)
    await wb2.send_json_to({"type": "resume", "conversations": {c: {"seq": 1, "change": 0}}})
    change = await next_frame(wb2)
    assert change["type"] == "message.updated" and change["message"]["recalled"] is True and change["change"] == 2
    assert (await next_frame(wb2))["conversations"][c] == {"last_seq": 1, "last_change": 2}
    await wa.disconnect()
    await wb2.disconnect()


async def test_presence_goes_to_co_members_only():
    (ada, bob, eve), (ta, tb, te) = await make("Ada", "Bob", "Eve")
    await call(services.open_direct_conversation, user=ada, other_user_id=bob.pk)
    wb, we = await open_socket(tb), await open_socket(te)
    wa = await open_socket(ta)
    online = await next_frame(wb, skip=())
    assert online["type"] == "presence" and online["user_id"] == gid("User", ada.pk) and online["online"] is True
    assert await we.receive_nothing(timeout=0.3)  # Eve shares no conversation with Ada
    await we.send_json_to({"type": "presence.query", "id": "q", "user_ids": [gid("User", ada.pk)]})
    assert await next_frame(we) == {"type": "presence.state", "id": "q", "users": []}
    await wb.send_json_to({"type": "presence.query", "id": "q", "user_ids": [gid("User", ada.pk)]})
    state = await next_frame(wb)
    assert state["users"][0]["online"] is True and state["users"][0]["last_seen"]
    await wa.disconnect()
    offline = await next_frame(wb, skip=())
    assert offline["type"] == "presence" and offline["online"] is False and offline["last_seen"]
    await wb.disconnect()
    await we.disconnect()



async def test_a_stale_conversation_subscription_hears_nothing_after_removal(monkeypatch):
    """Group doorbells go through one conversation group and name their members: a socket still subscribed
    after its user was removed (as if its unsubscribe had not taken effect yet) delivers nothing."""
    from backend.chat import consumers

    async def no_unsubscribe(consumer, conversation):
        return None

    monkeypatch.setattr(consumers, "_unsubscribe", no_unsubscribe)
    (ada, bob, cyd), (ta, tb, tc) = await make("Ada", "Bob", "Cyd")
    group = await call(services.create_group, owner=ada, title="G", member_ids=[bob.pk, cyd.pk])
    wb, wc = await open_socket(tb), await open_socket(tc)
    await call(services.remove_member, conversation_id=group.pk, actor=ada, user_id=cyd.pk)
    assert (await next_frame(wc))["type"] == "conversation.left"
    await call(services.send_message, conversation_id=group.pk, sender=ada, client_msg_id="x", text="after")
    assert [m["body"] for m in await messages(wb, 2)][-1] == "after"
    assert await wc.receive_nothing(timeout=0.3)
    await wb.disconnect()
    await wc.disconnect()


async def test_doorbells_out_of_order_are_put_back_in_order_without_the_database(monkeypatch):
    """Concurrent senders ring after their own commits, so seq 2's doorbell can overtake seq 1's: the socket
    holds it a moment for the one before it instead of reading the conversation from the database."""
    from backend.chat import selectors

    (ada, bob), (ta, tb) = await make("Ada", "Bob")
    conversation = await call(services.open_direct_conversation, user=ada, other_user_id=bob.pk)
    wb = await open_socket(tb)
    real, held = events.ring_users_now, []

    def overtaking(user_ids, event):
        if event["type"] == "chat.message" and event["seq"] == 1:
            held.append((user_ids, event))  # rung after seq 2's
            return
        real(user_ids, event)
        if held:
            real(*held.pop())

    catch_ups = []
    real_catch_up = selectors.catch_up
    monkeypatch.setattr(selectors, "catch_up", lambda *a: catch_ups.append(a) or real_catch_up(*a))
    monkeypatch.setattr(events, "ring_users_now", overtaking)
    for i in (1, 2):
        await call(services.send_message, conversation_id=conversation.pk, sender=ada, client_msg_id=f"o{i}",
                   text=f"n{i}")
    assert [m["body"] for m in await messages(wb, 2)] == ["n1", "n2"]
    assert await wb.receive_nothing(timeout=0.3)
    assert catch_ups == []
    await wb.disconnect()


async def test_a_doorbell_held_past_a_gap_that_never_fills_is_delivered_from_the_database(monkeypatch):
    (ada, bob), (ta, tb) = await make("Ada", "Bob")
    conversation = await call(services.open_direct_conversation, user=ada, other_user_id=bob.pk)
    wb = await open_socket(tb)
    real = events.ring_users_now

    def lossy(user_ids, event):
        if not (event["type"] == "chat.message" and event["seq"] == 1):
            real(user_ids, event)

    monkeypatch.setattr(events, "ring_users_now", lossy)
    for i in (1, 2):
        await call(services.send_message, conversation_id=conversation.pk, sender=ada, client_msg_id=f"g{i}",
                   text=f"n{i}")
    assert [(m["seq"], m["body"]) for m in await messages(wb, 2)] == [(1, "n1"), (2, "n2")]  # after the wait
    assert await wb.receive_nothing(timeout=0.3)
    await wb.disconnect()
