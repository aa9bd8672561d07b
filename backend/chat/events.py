"""Rendering chat rows as socket frames, and ringing members' sockets after commit.

The channel layer is only a doorbell: a doorbell may be dropped (channels-redis drops group messages for a
process inbox that is over capacity and only logs it at INFO), so every message frame carries its `seq` and
the consumer refills any gap from the database. The members to ring are computed in the committing
transaction: someone removed before the commit is never rung (or, through a conversation group, not
addressed, so their socket drops it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from django.db import transaction

from backend.accounts.ids import USER, decode_user, user_gid  # noqa: F401  (re-exported)
from backend.core import realtime
from backend.core.ids import encode_id
from backend.core.realtime import user_group

from .models import Membership, Message

CONVERSATION = "Conversation"
MESSAGE = "Message"


def conversation_gid(pk: int) -> str:
    return encode_id(CONVERSATION, pk)


def message_data(message: Message) -> dict:
    if not message.data:
        return {}
    try:
        return json.loads(message.data)
    except ValueError:  # pragma: no cover - written only by services
        return {}


def render_message(message: Message) -> dict:
    """The message as every member sees it. A recalled message is a tombstone: no body, no attachment."""
    data = {} if message.is_recalled else message_data(message)
    return {
        "id": encode_id(MESSAGE, message.pk),
        "conversation_id": conversation_gid(message.conversation_id),
        "seq": message.seq,
        "kind": message.kind,
        "sender_id": user_gid(message.sender_id),
        "client_msg_id": message.client_msg_id,
        "body": None if message.is_recalled else message.body,
        "attachment": data.get("attachment"),
        "card": card_document(message, data),
        "system": data.get("system"),
        "reply_to_seq": message.reply_to_seq,
        "mentions": [user_gid(uid) for uid in message.mentions or []],
        "created_at": message.created_at.isoformat(),
        "edited_at": message.edited_at.isoformat() if message.edited_at else None,
        "recalled": message.is_recalled,
    }


def card_document(message: Message, data: dict | None = None) -> dict | None:
    """A card as members see it: the owner's document (kind, ids, title, `state`) plus its `version`, which
    `update_card` bumps on every change (0 as posted)."""
    card = (message_data(message) if data is None else data).get("card")
    if card is None or message.is_recalled:
        return None
    return {**card, "version": message.card_version}


def change_frame(message: Message) -> dict:
    """The frame for a changed message, live and on resume: `card.updated` for a card's new state,
    `message.updated` for an edit or recall. `change` orders changes within the conversation."""
    kind = "card.updated" if message.kind == Message.Kind.CARD else "message.updated"
    return {"type": kind, "change": message.change_no, "message": render_message(message)}


def message_frame(message: Message) -> dict:
    return {"type": "message", "message": render_message(message)}


def conversation_added_frame(seat: Membership, *, title: str, peer_id: int | None, unread: int,
                             muted: bool) -> dict:
    """A conversation the user joined while away, as its list entry shows it (resume announces it before its
    messages)."""
    conversation = seat.conversation
    return {"type": "conversation.added", "conversation": {
        "id": conversation_gid(conversation.pk),
        "kind": conversation.kind,
        "title": title,
        "peer_id": user_gid(peer_id) if peer_id is not None else None,
        "my_role": seat.role,
        "member_count": conversation.member_count,
        "muted": muted,
        "visible_from_seq": seat.visible_from_seq,
        "last_seq": conversation.last_seq,
        "last_change": conversation.last_change,
        "last_read_seq": seat.last_read_seq,
        "unread": unread,
        "joined_at": seat.joined_at.isoformat(),
        "last_activity_at": conversation.last_activity_at.isoformat(),
    }}


# --- ringing ---------------------------------------------------------------------------------------
#
# Two kinds of doorbell target:
# - `user.<id>`: every socket of one user. 1:1, advisor and service conversations, membership changes, and
#   anything meant for one user (presence, a reader's own read marker).
# - `chat.conversation.<id>`: group and circle conversations. A socket subscribes to the groups of the group
#   and circle conversations it is in (at auth, on `conversation.joined`, on heartbeat); one group_send then
#   reaches every member (one Redis message per Daphne process instead of one group_send per member). The
#   event carries `to`, the member ids computed in the committing transaction, and a socket delivers it only
#   if its user is among them: a removed member whose socket has not yet unsubscribed hears nothing.
#
# Inside a socket consumer the rings are not sent from the database thread: `deferred_rings()` collects them
# and the consumer sends them from the event loop once the service returns (`core.realtime.deferred_rings`).

FANOUT_KINDS = ("group", "circle")  # Conversation.Kind values rung through a conversation group


def conversation_group(conversation_id: int) -> str:
    return f"chat.conversation.{conversation_id}"


def uses_conversation_group(kind: str) -> bool:
    return kind in FANOUT_KINDS


def _ring_groups_now(groups: list[str], event: dict) -> None:
    realtime.ring_many([(group, event) for group in groups])


def ring_users_now(user_ids: Iterable[int], event: dict) -> None:
    _ring_groups_now([user_group(uid) for uid in dict.fromkeys(user_ids)], event)


def ring_users_on_commit(user_ids: Iterable[int], event: dict) -> None:
    """Ring after the surrounding transaction commits (at once when there is none)."""
    ids = list(user_ids)
    transaction.on_commit(lambda: ring_users_now(ids, event))


def ring_members_now(conversation_id: int, kind: str, user_ids: Iterable[int], event: dict) -> None:
    """Ring these members of a conversation: through its conversation group (addressed `to` them) for group
    and circle conversations, else through their user groups."""
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return
    if len(ids) > 1 and uses_conversation_group(kind):
        _ring_groups_now([conversation_group(conversation_id)], {**event, "to": ids})
    else:
        ring_users_now(ids, event)


def ring_members_on_commit(conversation_id: int, kind: str, user_ids: Iterable[int], event: dict) -> None:
    ids = list(user_ids)
    transaction.on_commit(lambda: ring_members_now(conversation_id, kind, ids, event))


def encode_frame(frame: dict) -> str:
    """A frame as it goes on the wire (compact JSON, UTF-8 text)."""
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def new_message_event(message: Message) -> dict:
    """The frame travels encoded (`text`): it is JSON-encoded once here, not once per receiving socket (one
    doorbell reaches every socket of a group's members on a node as the same event)."""
    return {"type": "chat.message", "conversation": message.conversation_id, "seq": message.seq,
            "text": encode_frame(message_frame(message))}


def relay_event(conversation_id: int, frame: dict) -> dict:
    """A frame that is not stored (typing, read receipts, message updates): passed through unless the socket
    has been told it left the conversation."""
    return {"type": "chat.relay", "conversation": conversation_id, "text": encode_frame(frame)}


def membership_event(conversation_id: int, *, joined: bool, seq: int, reason: str, kind: str = "") -> dict:
    """`subscribe`: the socket (un)subscribes the conversation group (group and circle conversations)."""
    return {"type": "chat.membership", "conversation": conversation_id, "joined": joined, "seq": seq,
            "reason": reason, "subscribe": uses_conversation_group(kind)}
