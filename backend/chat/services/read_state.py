"""Per-member state: mute, read position, typing."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from backend.core import ratelimit
from backend.core.errors import NotFound, ValidationFailed
from backend.core.values import is_int
from backend.notifications import services as notification_services

from .. import events, limits
from ..models import Membership
from ._base import (
    _active_members,
)


def set_muted(*, conversation_id: int, user: Any, muted: bool) -> Membership:
    """Muted conversations send no push; the socket still gets every message. The mute is recorded once, as
    notifications' ConversationMute (its push policy honours it for whatever any app posts about this
    conversation); chat only checks the seat."""
    with transaction.atomic():
        seat = Membership.objects.select_for_update().filter(
            conversation_id=conversation_id, user=user, left_at__isnull=True).first()
        if seat is None:
            raise NotFound(field="conversationId")
        notification_services.set_conversation_muted(user_id=user.pk, conversation_id=conversation_id,
                                                     muted=bool(muted))
    return seat


def mark_read(*, conversation_id: int, user: Any, seq: object) -> Membership:
    """Move the read marker forward (never back). Receipts go to the reader's other devices, and to the
    other members in conversations small enough for receipts to make sense."""
    if not is_int(seq, minimum=0):
        raise ValidationFailed("seq must be a non-negative integer.", code="INVALID_SEQ", field="seq")
    with transaction.atomic():
        seat = (Membership.objects.select_for_update().select_related("conversation")
                .filter(conversation_id=conversation_id, user=user, left_at__isnull=True).first())
        if seat is None:
            raise NotFound(field="conversationId")
        conversation = seat.conversation
        seq = min(seq, conversation.last_seq)
        if seq <= seat.last_read_seq:
            return seat
        seat.last_read_seq = seq
        seat.save(update_fields=["last_read_seq"])
        if seq >= conversation.last_seq:  # all caught up: its notifications stop counting and pushing
            notification_services.mark_conversation_read(recipient_id=user.pk, conversation_id=conversation.pk)
        audience = [user.pk]
        if conversation.member_count <= limits.get("READ_RECEIPT_MAX_MEMBERS"):
            audience = [uid for uid, _ in _active_members(conversation)]
        frame = {"type": "read", "conversation_id": events.conversation_gid(conversation.pk),
                 "user_id": events.user_gid(user.pk), "seq": seq}
        events.ring_members_on_commit(conversation.pk, conversation.kind, audience,
                                      events.relay_event(conversation.pk, frame))
    return seat


def relay_typing(*, conversation_id: int, user: Any) -> None:
    """Tell the other members someone is typing. Rate-limited, never stored, skipped in big conversations."""
    ratelimit.hit("chat-typing", f"{user.pk}:{conversation_id}", limit=limits.get("TYPING_LIMIT"),
                  window_seconds=limits.get("TYPING_WINDOW_SECONDS"))
    seat = Membership.objects.select_related("conversation").filter(
        conversation_id=conversation_id, user=user, left_at__isnull=True).first()
    if seat is None:
        raise NotFound(field="conversationId")
    conversation = seat.conversation
    if conversation.member_count > limits.get("TYPING_MAX_MEMBERS"):
        return
    others = [uid for uid, _ in _active_members(conversation) if uid != user.pk]
    frame = {"type": "typing", "conversation_id": events.conversation_gid(conversation.pk),
             "user_id": events.user_gid(user.pk)}
    events.ring_members_now(conversation.pk, conversation.kind, others, events.relay_event(conversation.pk, frame))
