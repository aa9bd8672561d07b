"""Handing a customer's advisor conversation over to another client manager (called by the advisors app)."""

from __future__ import annotations

from django.db import transaction

from backend.core.errors import ValidationFailed

from ..models import Membership
from ._base import (
    Kind,
    NotSupportedForKind,
    Role,
    _join,
    _lock_conversation,
    _pair_key,
    _system,
    _unseat,
    _users,
)


def hand_over_advisor_conversation(*, conversation_id: int, new_manager_id: int, text: str) -> Membership:
    """Trusted server code only. The new manager takes the advisor seat and sees the whole history (the bank's
    record of the relationship, so nothing has to be asked twice); the previous manager leaves and stops
    hearing the conversation. The customer keeps the same conversation and history, and reads `text` as a
    system message."""
    (manager,) = _users([new_manager_id], field="managerId")
    if not manager.is_client_manager:
        raise ValidationFailed("That user is not a client manager.", code="NOT_A_CLIENT_MANAGER", field="managerId")
    with transaction.atomic():
        conversation = _lock_conversation(conversation_id)
        if conversation.kind != Kind.ADVISOR:
            raise NotSupportedForKind()
        seats = list(Membership.objects.filter(conversation=conversation, left_at__isnull=True))
        previous = [s for s in seats if s.role == Role.ADMIN and s.user_id != manager.pk]
        customer_ids = [s.user_id for s in seats if s.role == Role.MEMBER]
        for seat in previous:
            _unseat(conversation, seat, removed_by=None, reason="handed_over")
        seat = _join(conversation, manager.pk, role=Role.ADMIN)
        if seat.visible_from_seq != 1:
            seat.visible_from_seq = 1
            seat.save(update_fields=["visible_from_seq"])
        conversation.owner_id = manager.pk
        conversation.title = manager.display_name[:64]
        if customer_ids:
            conversation.key = _pair_key("advisor", customer_ids[0], manager.pk, ordered=True)
        conversation.save(update_fields=["owner", "title", "key", "member_count"])
        _system(conversation, actor_id=None, event="manager_changed", text=text, user_id=manager.pk)
    return seat
