"""The defaulter blacklist (SoFi's public naming): loans call it; operations lift it with a reason.

Effects live where they apply: circles refuse a blacklisted user creating or joining circles
(BLACKLISTED), loans ask `is_blacklisted` before a loan request or a loan is made, and the circles told show
the mark on the member and got a 公开通报 in their chat. Every change writes a BlacklistAudit row.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction

from backend.chat import services as chat
from backend.core import clock
from backend.core.errors import PermissionDenied, ValidationFailed

from .. import selectors
from ..models import BlacklistAudit, BlacklistEntry, Circle
from ._base import clean_line, clean_text

is_blacklisted = selectors.is_blacklisted


def blacklist_for_default(*, user: Any, loan_ref: str, circles: Iterable[Circle | int], reason: str = "",
                          evidence: str = "", actor: Any | None = None) -> BlacklistEntry:
    """Blacklist a defaulter and tell the given circles (only those the user is an active member of).
    Idempotent per (user, loan): a second call returns the entry and tells no one twice."""
    loan_ref = clean_line(loan_ref, field="loanRef", code="INVALID_LOAN_REF", max_chars=64)
    reason = clean_line(reason or "Loan default", field="reason", code="INVALID_REASON", max_chars=200)
    evidence = clean_text(evidence, field="evidence", code="INVALID_EVIDENCE", max_chars=5000)
    circle_ids = [c.pk if isinstance(c, Circle) else c for c in circles]
    with transaction.atomic():
        entry, created = BlacklistEntry.objects.get_or_create(
            user=user, loan_ref=loan_ref, defaults={"reason": reason, "evidence": evidence})
        if not created:
            return entry
        told = list(Circle.objects.filter(pk__in=circle_ids, members__user=user, members__left_at__isnull=True)
                    .order_by("id"))
        entry.circles.set(told)
        BlacklistAudit.objects.create(entry=entry, action="created", actor=actor, reason=reason,
                                      details={"loan_ref": loan_ref, "circle_ids": [c.pk for c in told]})
        for circle in told:
            if circle.conversation_id:
                chat.post_system_notice(
                    conversation_id=circle.conversation_id, event="defaulter_named",
                    text=f"公开通报 Public notice: {user.display_name} defaulted on a loan and is blacklisted.",
                    user_id=user.pk)
    return entry


def lift_blacklist(*, entry: BlacklistEntry, by_staff: Any, reason: str) -> BlacklistEntry:
    """Operations lift an entry (repaid, mistaken, settled); a reason is required and audited."""
    if not getattr(by_staff, "is_staff", False):
        raise PermissionDenied()
    if not isinstance(reason, str) or not reason.strip():
        raise ValidationFailed("Say why the entry is lifted.", code="REASON_REQUIRED", field="reason")
    reason = clean_line(reason, field="reason", code="INVALID_REASON", max_chars=200)
    with transaction.atomic():
        entry = BlacklistEntry.objects.select_for_update().get(pk=entry.pk)
        if entry.lifted_at is not None:
            return entry
        entry.lifted_at, entry.lifted_by, entry.lift_reason = clock.now(), by_staff, reason
        entry.save(update_fields=["lifted_at", "lifted_by", "lift_reason"])
        BlacklistAudit.objects.create(entry=entry, action="lifted", actor=by_staff, reason=reason)
        for circle in entry.circles.filter(members__user_id=entry.user_id, members__left_at__isnull=True):
            if circle.conversation_id:
                chat.post_system_notice(conversation_id=circle.conversation_id, event="defaulter_cleared",
                                        text=f"{entry.user.display_name}: the blacklist notice was lifted.",
                                        user_id=entry.user_id)
    return entry


def record_admin_change(*, entry: BlacklistEntry, actor: Any, changed: list[str]) -> None:
    """The admin screen edits reason or evidence: audited like every other change."""
    BlacklistAudit.objects.create(entry=entry, action="edited", actor=actor, details={"fields": changed})


__all__ = ["blacklist_for_default", "is_blacklisted", "lift_blacklist", "record_admin_change"]
