"""Vouches and loan outcomes: the inputs of a member's trust score that people and loans produce."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction

from backend.core import clock
from backend.core.errors import Conflict, NotFound, ValidationFailed
from backend.core.values import is_int

from .. import selectors
from ..models import CircleMember, LoanOutcome, Vouch
from ._base import clean_line, limit, lock_circle, member_seat


def vouch(*, voucher: Any, circle_id: int, vouchee_id: int) -> Vouch:
    """Vouch for a co-member. Each member has VOUCHES_PER_MEMBER active vouches per circle; never for oneself;
    never across a block (the other looks like a non-member)."""
    with transaction.atomic():
        circle = lock_circle(circle_id)
        member_seat(circle, voucher.pk)
        if vouchee_id == voucher.pk:
            raise ValidationFailed("You cannot vouch for yourself.", code="SELF_VOUCH", field="userId")
        if not is_int(vouchee_id) or selectors.is_blocked_between(voucher.pk, vouchee_id) or not \
                CircleMember.objects.filter(circle=circle, user_id=vouchee_id, left_at__isnull=True).exists():
            raise NotFound(field="userId")
        active = Vouch.objects.filter(circle=circle, voucher=voucher, withdrawn_at__isnull=True)
        if active.filter(vouchee_id=vouchee_id).exists():
            raise Conflict("You already vouch for them.", code="ALREADY_VOUCHED", field="userId")
        if active.count() >= limit("VOUCHES_PER_MEMBER"):
            raise Conflict(f"You can vouch for at most {limit('VOUCHES_PER_MEMBER')} members of a circle.",
                           code="VOUCH_LIMIT_REACHED", field="userId")
        return Vouch.objects.create(circle=circle, voucher=voucher, vouchee_id=vouchee_id)


def withdraw_vouch(*, voucher: Any, circle_id: int, vouchee_id: int) -> None:
    with transaction.atomic():
        changed = Vouch.objects.filter(circle_id=circle_id, voucher=voucher, vouchee_id=vouchee_id,
                                       withdrawn_at__isnull=True).update(withdrawn_at=clock.now())
        if not changed:
            raise NotFound(field="userId")


def record_loan_outcome(*, user_id: int, circle_ids: Iterable[int], loan_ref: str,
                        outcome: str) -> list[LoanOutcome]:
    """Called by loans when a loan ends: on time, late or defaulted, counted in each circle it ran in.
    Idempotent per (user, circle, loan): reporting again changes nothing; a later outcome replaces an earlier
    one (a late loan that then defaults counts as defaulted)."""
    if outcome not in LoanOutcome.Outcome.values:
        raise ValidationFailed("Unknown outcome.", code="INVALID_OUTCOME", field="outcome")
    loan_ref = clean_line(loan_ref, field="loanRef", code="INVALID_LOAN_REF", max_chars=64)
    rows = []
    with transaction.atomic():
        for circle_id in dict.fromkeys(circle_ids):
            try:
                with transaction.atomic():
                    row, created = LoanOutcome.objects.get_or_create(
                        user_id=user_id, circle_id=circle_id, loan_ref=loan_ref, defaults={"outcome": outcome})
            except IntegrityError:
                row, created = LoanOutcome.objects.get(user_id=user_id, circle_id=circle_id, loan_ref=loan_ref), False
            if not created and row.outcome != outcome:
                row.outcome, row.recorded_at = outcome, clock.now()
                row.save(update_fields=["outcome", "recorded_at"])
            rows.append(row)
    return rows
