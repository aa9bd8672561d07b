"""Qualifying events: the interface products (loans first) call to report what a referee did.

    record_qualifying_event(user=..., kind=..., amount=..., reference=..., occurred_at=...)
    reverse_qualifying_event(reference=..., reversed_at=None)

An event counts for the referee's attribution when its kind is the campaign's qualifying kind, its amount at
least the campaign minimum, it happened while the campaign ran, and no other event of the referee is already
holding or settled. It then *holds* for the campaign's holding period; `process_due_qualifications` (a
periodic job) settles it afterwards and grants or rejects the reward. A reversal during the holding period
cancels it (nothing was paid; a later event may qualify instead); a reversal after the reward claws it back.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction

from backend.core import clock
from backend.core.errors import NotFound, ValidationFailed
from backend.core.values import is_int

from ..limits import referrals_setting
from ..models import Attribution, QualifyingEvent, Reward
from . import rewards
from ._common import KIND_RE, REFERENCE_RE, IgnoredReason, ReferenceConflict


def _validate(kind: object, amount: object, reference: object, occurred_at: object) -> None:
    if not isinstance(kind, str) or not KIND_RE.match(kind):
        raise ValidationFailed("An event kind is a snake_case word.", code="EVENT_KIND_INVALID", field="kind")
    if not is_int(amount, minimum=0):
        raise ValidationFailed("An amount is a whole number of fen ≥ 0.", code="AMOUNT_INVALID", field="amount")
    if not isinstance(reference, str) or not REFERENCE_RE.match(reference):
        raise ValidationFailed("A reference is 1 to 100 letters, digits or -_:. characters.",
                               code="REFERENCE_INVALID", field="reference")
    if not isinstance(occurred_at, dt.datetime) or occurred_at.tzinfo is None:
        raise ValidationFailed("occurred_at is an aware datetime.", code="OCCURRED_AT_INVALID", field="occurredAt")


def _classify(attribution: Attribution | None, *, kind: str, amount: int, occurred_at: dt.datetime) -> str:
    """'' when the event qualifies, else the IgnoredReason."""
    if attribution is None:
        return IgnoredReason.NOT_REFERRED
    campaign = attribution.campaign
    if kind != campaign.qualifying_kind:
        return IgnoredReason.KIND_NOT_QUALIFYING
    if amount < campaign.qualifying_min_amount:
        return IgnoredReason.AMOUNT_BELOW_MINIMUM
    if not campaign.is_running(occurred_at):
        return IgnoredReason.CAMPAIGN_NOT_RUNNING
    if Reward.objects.filter(attribution=attribution).exists():
        return IgnoredReason.ALREADY_DECIDED  # one reward per referee, whatever became of it
    live = (QualifyingEvent.Status.HOLDING, QualifyingEvent.Status.SETTLED)
    if QualifyingEvent.objects.filter(attribution=attribution, status__in=live).exists():
        return IgnoredReason.ALREADY_QUALIFYING
    return ""


def record_qualifying_event(*, user: Any, kind: str, amount: int, reference: str,
                            occurred_at: dt.datetime) -> QualifyingEvent:
    """Record an action a product settled for `user` (e.g. loans: a lending pledge disbursed). Idempotent on
    `reference`: the same report returns the first row; the same reference with other details is
    REFERENCE_CONFLICT. Events that do not qualify are kept as IGNORED with the reason."""
    _validate(kind, amount, reference, occurred_at)
    existing = QualifyingEvent.objects.filter(reference=reference).first()
    if existing is not None:
        return _same_or_conflict(existing, user=user, kind=kind, amount=amount, occurred_at=occurred_at)
    try:
        with transaction.atomic():
            # Lock the attribution row only (not the joined campaign, whose lock comes after the event's in
            # the reward path): two reports for one referee serialize here.
            attribution = (Attribution.objects.select_for_update(of=("self",)).select_related("campaign")
                           .filter(referee_id=user.pk).first())
            reason = _classify(attribution, kind=kind, amount=amount, occurred_at=occurred_at)
            settles_at = None
            if not reason:
                settles_at = occurred_at + dt.timedelta(days=attribution.campaign.holding_days)
            return QualifyingEvent.objects.create(
                user_id=user.pk, kind=kind, amount=amount, reference=reference, occurred_at=occurred_at,
                settles_at=settles_at, attribution=None if reason == IgnoredReason.NOT_REFERRED else attribution,
                status=QualifyingEvent.Status.IGNORED if reason else QualifyingEvent.Status.HOLDING,
                ignored_reason=reason)
    except IntegrityError:  # the same reference reported twice at once: the first one won
        existing = QualifyingEvent.objects.filter(reference=reference).first()
        if existing is None:
            raise
        return _same_or_conflict(existing, user=user, kind=kind, amount=amount, occurred_at=occurred_at)


def _same_or_conflict(event: QualifyingEvent, *, user: Any, kind: str, amount: int,
                      occurred_at: dt.datetime) -> QualifyingEvent:
    if (event.user_id, event.kind, event.amount, event.occurred_at) != (user.pk, kind, amount, occurred_at):
        raise ReferenceConflict(field="reference")
    return event


def reverse_qualifying_event(*, reference: str, reversed_at: dt.datetime | None = None) -> QualifyingEvent:
    """The product undid the action (pledge cancelled, loan unwound). Within the holding period the event
    simply stops counting; after its reward was granted the reward is clawed back. Idempotent."""
    if not isinstance(reference, str) or not REFERENCE_RE.match(reference):
        raise NotFound(field="reference")
    with transaction.atomic():
        event = QualifyingEvent.objects.select_for_update().filter(reference=reference).first()
        if event is None:
            raise NotFound(field="reference")
        if event.status == QualifyingEvent.Status.REVERSED:
            return event
        was_settled = event.status == QualifyingEvent.Status.SETTLED
        event.status, event.reversed_at = QualifyingEvent.Status.REVERSED, reversed_at or clock.now()
        event.save(update_fields=["status", "reversed_at"])
        if was_settled:
            rewards.claw_back(event=event)
        return event


def process_due_qualifications(*, limit: int | None = None) -> int:
    """Settle every event whose holding period has passed (as of core.clock) and decide its reward.
    Idempotent: each event is settled once, under its row lock. Returns how many were settled."""
    due = list(QualifyingEvent.objects.filter(status=QualifyingEvent.Status.HOLDING, settles_at__lte=clock.now())
               .order_by("settles_at", "id").values_list("pk", flat=True)[:limit or referrals_setting("SCAN_BATCH")])
    done = 0
    for event_id in due:
        with transaction.atomic():
            event = QualifyingEvent.objects.select_for_update().get(pk=event_id)
            if event.status != QualifyingEvent.Status.HOLDING:
                continue  # reversed, or settled by another worker meanwhile
            event.status = QualifyingEvent.Status.SETTLED
            event.save(update_fields=["status"])
            rewards.decide(event=event)
            done += 1
    return done
