"""Resume beyond the basics: edits/recalls paged past one page (none lost), and conversations the user was
added to while away announced (`conversation.added`) with their messages."""

import datetime as dt

import pytest
from channels.db import database_sync_to_async

from backend.chat import services
from backend.core import clock

from .conftest import gid
from .test_socket_chat import call, make, messages, next_frame, open_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@database_sync_to_async
def _chat_with_many_changes(ada, bob, count: int, recalled: set[int]):
    conversation = services.open_direct_conversation(user=ada, other_user_id=bob.pk)
    sent = [services.send_message(conversation_id=conversation.pk, sender=ada, client_msg_id=f"m{i}",
                                  text=f"draft {i}").message for i in range(count)]
    for i, message in enumerate(sent):
        if i in recalled:
            services.recall_message(message_id=message.pk, user=ada)
        else:
            services.edit_message(message_id=message.pk, user=ada, text=f"final {i}")
    return conversation, sent


async def test_resume_pages_edits_and_recalls_so_none_is_lost(settings):
    settings.QUANZI_CHAT = {"SEND_LIMIT": 1000}
    (ada, bob), (ta, tb) = await make("Ada", "Bob")
    recalled = {3, 120, 249}
    conversation, sent = await _chat_with_many_changes(ada, bob, 250, recalled)
    c = gid("Conversation", conversation.pk)
    wb = await open_socket(tb)  # Bob holds all 250 drafts and no change yet
    await wb.send_json_to({"type": "resume", "id": "p1", "conversations": {c: {"seq": 250, "change": 0}}})
    first = [await next_frame(wb) for _ in range(200)]
    assert {f["type"] for f in first} == {"message.updated"}
    assert [f["change"] for f in first] == list(range(1, 201))
    done = await next_frame(wb)
    assert done["type"] == "resume.done"
    # the client holds change 200, not the newest (250): it is told to ask again
    assert done["conversations"][c] == {"last_seq": 250, "last_change": 200, "more_changes": True}

    await wb.send_json_to({"type": "resume", "id": "p2", "conversations": {c: {"seq": 250, "change": 200}}})
    rest = [await next_frame(wb) for _ in range(50)]
    assert [f["change"] for f in rest] == list(range(201, 251))
    done = await next_frame(wb)
    assert done["conversations"][c] == {"last_seq": 250, "last_change": 250}
    everything = {f["message"]["seq"]: f["message"] for f in first + rest}
    assert sorted(everything) == list(range(1, 251))  # every message's latest state arrived, once
    assert {seq - 1 for seq, m in everything.items() if m["recalled"]} == recalled
    assert all(m["body"] == f"final {seq - 1}" for seq, m in everything.items() if not m["recalled"])
    await wb.disconnect()


async def test_conversations_added_while_away_are_announced_with_their_messages():
    (ada, bob, cyd, dan), (ta, tb, tc, td) = await make("Ada", "Bob", "Cyd", "Dan")
    known = await call(services.open_direct_conversation, user=ada, other_user_id=bob.pk)
    with clock.shifted(-dt.timedelta(hours=1)):  # joined long before the client's cursor: it loaded this one
        loaded = await call(services.create_group, owner=dan, title="Loaded", member_ids=[bob.pk])
    k = gid("Conversation", known.pk)

    wb = await open_socket(tb)
    await wb.send_json_to({"type": "resume", "id": 1, "conversations": {k: 0}})
    done = await next_frame(wb)
    assert done["type"] == "resume.done" and done["conversations"] == {k: {"last_seq": 0, "last_change": 0}}
    cursor = done["added_cursor"]
    await wb.disconnect()

    # while Bob is away: a group with him, a direct chat from Cyd, and a group he was added to and removed from
    group = await call(services.create_group, owner=ada, title="Trip", member_ids=[bob.pk, cyd.pk])
    await call(services.send_message, conversation_id=group.pk, sender=ada, client_msg_id="g1", text="Tickets?")
    await call(services.send_message, conversation_id=group.pk, sender=cyd, client_msg_id="g2", text="Booked")
    direct = await call(services.open_direct_conversation, user=cyd, other_user_id=bob.pk)
    await call(services.send_message, conversation_id=direct.pk, sender=cyd, client_msg_id="d1", text="嗨")
    gone = await call(services.create_group, owner=dan, title="Gone", member_ids=[bob.pk])
    await call(services.remove_member, conversation_id=gone.pk, actor=dan, user_id=bob.pk)
    await call(services.send_message, conversation_id=known.pk, sender=ada, client_msg_id="k1", text="known")
    g, d = gid("Conversation", group.pk), gid("Conversation", direct.pk)

    wb = await open_socket(tb)
    await wb.send_json_to({"type": "resume", "id": 2, "conversations": {k: 0}, "added_after": cursor})
    assert [m["body"] for m in await messages(wb, 1)] == ["known"]  # the named conversation first
    added = await next_frame(wb)
    assert added["type"] == "conversation.added"
    summary = added["conversation"]
    assert summary["id"] == g and summary["kind"] == "group" and summary["title"] == "Trip"
    assert summary["my_role"] == "member" and summary["member_count"] == 3 and summary["peer_id"] is None
    assert summary["last_seq"] == 3 and summary["visible_from_seq"] == 1 and summary["unread"] == 3
    assert summary["muted"] is False
    assert [m["seq"] for m in await messages(wb, 3)] == [1, 2, 3]
    added = await next_frame(wb)
    assert added["conversation"]["id"] == d and added["conversation"]["title"] == "Cyd"
    assert added["conversation"]["peer_id"] == gid("User", cyd.pk)
    assert [m["body"] for m in await messages(wb, 1)] == ["嗨"]
    done = await next_frame(wb)
    assert done["type"] == "resume.done" and done["id"] == 2
    assert done["conversations"] == {k: {"last_seq": 1, "last_change": 0}, g: {"last_seq": 3, "last_change": 0},
                                     d: {"last_seq": 1, "last_change": 0}}
    assert "added_more" not in done
    # neither the one he left nor the one loaded long before the cursor is announced
    assert gid("Conversation", gone.pk) not in done["conversations"]
    assert gid("Conversation", loaded.pk) not in done["conversations"]

    # named from now on, nothing is announced twice; live delivery continues gapless
    await wb.send_json_to({"type": "resume", "id": 3, "conversations": {k: 1, g: 3, d: 1},
                           "added_after": done["added_cursor"]})
    again = await next_frame(wb)
    assert again["type"] == "resume.done" and set(again["conversations"]) == {k, g, d}
    await call(services.send_message, conversation_id=group.pk, sender=ada, client_msg_id="g3", text="live")
    assert [m["seq"] for m in await messages(wb, 1)] == [4]
    # a resume without added_after announces nothing (the client has no cursor yet: it loads the list)
    await wb.send_json_to({"type": "resume", "id": 4, "conversations": {k: 1}})
    assert set((await next_frame(wb))["conversations"]) == {k}
    await wb.send_json_to({"type": "resume", "id": 5, "conversations": {k: 1}, "added_after": "bogus"})
    bad = await next_frame(wb)
    assert (bad["type"], bad["code"], bad["field"], bad["id"]) == ("error", "INVALID_RESUME", "addedAfter", 5)
    await wb.disconnect()


async def test_added_conversations_are_announced_a_page_at_a_time(settings):
    settings.QUANZI_CHAT = {"RESUME_MAX_ADDED": 2}
    (ada, bob), (ta, tb) = await make("Ada", "Bob")
    wb = await open_socket(tb)
    await wb.send_json_to({"type": "resume", "conversations": {}})
    cursor = (await next_frame(wb))["added_cursor"]
    await wb.disconnect()
    groups = [await call(services.create_group, owner=ada, title=f"G{i}", member_ids=[bob.pk]) for i in range(3)]
    wb = await open_socket(tb)
    announced, more = [], []
    for _ in range(2):
        await wb.send_json_to({"type": "resume", "conversations": {c: 1 for c in announced}, "added_after": cursor})
        while (frame := await next_frame(wb))["type"] != "resume.done":
            if frame["type"] == "conversation.added":
                announced.append(frame["conversation"]["id"])
        cursor = frame["added_cursor"]
        more.append(frame.get("added_more", False))
    assert announced == [gid("Conversation", g.pk) for g in groups] and more == [True, False]
    await wb.disconnect()
