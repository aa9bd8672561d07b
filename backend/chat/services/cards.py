"""Cards whose state their owner app changes: a red packet filling up, a bill being paid, a transfer accepted.

Chat stays ignorant of what a card means. A card is posted (``post_card``) with a ``kind``, an ``owner`` (the
app that may change it), the owner's ids and a small ``state`` document; ``update_card`` replaces the state,
checks the caller's idea of the current version (optimistic concurrency: two writers never silently
overwrite each other) and bumps it. Each update is numbered like an edit (``Conversation.last_change``), so
members hear it live as a ``card.updated`` frame and a socket that was away gets it from ``resume`` with the
edits and recalls; history (GraphQL ``Message.card``) always shows the newest state and version.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import transaction

from backend.core.errors import Conflict, NotFound, ValidationFailed

from .. import events, limits
from ..models import Message
from ._base import _append, _lock_conversation
from .messages import _announce_change, _check_card, _clean_client_msg_id


class CardVersionConflict(Conflict):
    code = "CARD_VERSION_CONFLICT"
    default_message = "The card changed meanwhile; read it again."


def post_server_card(*, conversation_id: int, key: str, card: dict[str, Any]) -> tuple[Message, bool]:
    """Trusted server code only: a card with no sender, like a system message, for an app that must not speak
    as any member (loans' anonymous request). ``card`` names its ``owner`` app, which alone may
    ``update_card`` it. Idempotent on ``key`` per conversation: a re-run (a retried task, a repeated scan)
    returns ``(the original, False)`` instead of posting twice. Members are rung, nobody is pushed."""
    key = _clean_client_msg_id(key)
    _check_card(card)
    if not isinstance(card.get("owner"), str) or not card["owner"]:
        raise ValidationFailed("A server card names its owner app.", code="INVALID_CARD", field="card")
    with transaction.atomic():
        conversation = _lock_conversation(conversation_id)
        original = Message.objects.filter(conversation=conversation, sender__isnull=True,
                                          client_msg_id=key).first()
        if original is not None:
            return original, False
        message = _append(conversation, sender_id=None, kind=Message.Kind.CARD, body="", data={"card": card},
                          client_msg_id=key, card_kind=card["kind"])
    return message, True


def update_card(*, message_id: int, owner: str, state: dict[str, Any], expected_version: int,
                title: str | None = None) -> Message:
    """Server-side only: the owner app replaces a card's state. ``expected_version`` is the version the
    caller last saw (0 for a card as posted); anything else is CARD_VERSION_CONFLICT and changes nothing."""
    if not isinstance(state, dict):
        raise ValidationFailed("A card state is an object.", code="INVALID_CARD", field="state")
    conversation_id = Message.objects.filter(pk=message_id).values_list("conversation_id", flat=True).first()
    if conversation_id is None:
        raise NotFound(field="messageId")
    with transaction.atomic():
        conversation = _lock_conversation(conversation_id)
        message = Message.objects.select_for_update().get(pk=message_id)
        card = events.message_data(message).get("card")
        if message.kind != Message.Kind.CARD or not isinstance(card, dict) or card.get("owner") != owner:
            raise NotFound("No such card.", field="messageId")
        if message.card_version != expected_version:
            raise CardVersionConflict(field="expectedVersion")
        card = {**card, "state": state}
        if title is not None:
            card["title"] = title
        encoded = json.dumps({"card": card}, ensure_ascii=False, separators=(",", ":"))
        if len(encoded.encode()) > limits.get("CARD_MAX_BYTES"):
            raise ValidationFailed("The card is too large.", code="INVALID_CARD", field="state")
        message.data = encoded
        message.card_version += 1
        _announce_change(conversation, message)
        message.save(update_fields=["data", "card_version", "change_no"])
    return message
