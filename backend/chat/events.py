"""Rendering chat rows as socket frames, and ringing members' sockets after commit.

The channel layer is only a doorbell: a doorbell may be dropped (channels-redis drops group messages for a
process inbox that is over capacity and only logs it at INFO), so every message frame carries its `seq` and
the consumer refills any gap from the database. Doorbells go to each member's `user.<id>` group, computed in
the committing transaction: someone removed before the commit is simply not rung.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from backend.core.errors import NotFound
from backend.core.ids import decode_id, encode_id
from backend.core.realtime import user_group

from .models import Message

log = logging.getLogger("quanzi.chat")

CONVERSATION = "Conversation"
MESSAGE = "Message"
USER = "User"


def conversation_gid(pk: int) -> str:
    return encode_id(CONVERSATION, pk)


def user_gid(pk: int | None) -> str | None:
    return encode_id(USER, pk) if pk else None


def decode_user(global_id: object, *, field: str) -> int:
    """A user's global id: "User:<pk>" as chat renders it, or the "Viewer:<pk>" of `me { id }`."""
    try:
        return decode_id(global_id, type_name=USER, field=field)
    except NotFound:
        return decode_id(global_id, type_name="Viewer", field=field)


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
        "card": data.get("card"),
        "system": data.get("system"),
        "reply_to_seq": message.reply_to_seq,
        "mentions": [user_gid(uid) for uid in message.mentions or []],
        "created_at": message.created_at.isoformat(),
        "edited_at": message.edited_at.isoformat() if message.edited_at else None,
        "recalled": message.is_recalled,
    }


def message_frame(message: Message) -> dict:
    return {"type": "message", "message": render_message(message)}


# --- ringing ---------------------------------------------------------------------------------------


RING_CONCURRENCY = 32  # below the Redis connection pool's limit (redis-py raises MaxConnectionsError past it)


async def _ring_all(groups: list[str], event: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    gate = asyncio.Semaphore(RING_CONCURRENCY)

    async def ring(group: str) -> None:
        async with gate:
            await layer.group_send(group, event)

    results = await asyncio.gather(*(ring(g) for g in groups), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:  # recovered by seq (gap refill, heartbeat catch-up, resume); never fail the write
        log.warning("%d of %d chat doorbells failed: %r", len(failed), len(groups), failed[0])


def ring_users_now(user_ids: Iterable[int], event: dict) -> None:
    groups = [user_group(uid) for uid in dict.fromkeys(user_ids)]
    if not groups:
        return
    try:
        async_to_sync(_ring_all)(groups, event)
    except Exception:
        log.warning("chat doorbell failed", exc_info=True)


def ring_users_on_commit(user_ids: Iterable[int], event: dict) -> None:
    """Ring after the surrounding transaction commits (at once when there is none)."""
    ids = list(user_ids)
    transaction.on_commit(lambda: ring_users_now(ids, event))


def new_message_event(message: Message) -> dict:
    return {"type": "chat.message", "conversation": message.conversation_id, "seq": message.seq,
            "frame": message_frame(message)}


def relay_event(conversation_id: int, frame: dict) -> dict:
    """A frame that is not stored (typing, read receipts, message updates): passed through unless the socket
    has been told it left the conversation."""
    return {"type": "chat.relay", "conversation": conversation_id, "frame": frame}


def membership_event(conversation_id: int, *, joined: bool, seq: int, reason: str) -> dict:
    return {"type": "chat.membership", "conversation": conversation_id, "joined": joined, "seq": seq,
            "reason": reason}
