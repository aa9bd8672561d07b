"""Yield-doubling cards (理财通 收益翻倍卡): the holder picks one day; loans asks `yield_doubling_on(user, day)`
when it pays that day's interest and calls `pay_doubling_day` with the interest, and the same amount again is
paid from the marketing budget (counted against the card's campaign; BUDGET_EXHAUSTED when it is used up)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import IntegrityError, transaction

from backend.core import clock
from backend.core.errors import NotFound, ValidationFailed
from backend.core.values import is_int
from backend.wallet import services as wallet
from backend.wallet.money import format_fen

from ..models import Campaign, DoublingCard
from ._common import REFERENCE_RE, CardNotUsable, DayInvalid, clean_scope, scopes_covering, tell
from .rewards import DOUBLING_KIND


def choose_doubling_day(*, user: Any, card_id: int, day: object) -> DoublingCard:
    """Pick (or move) the day of one of my unused or scheduled cards: from tomorrow until it expires, and not a
    day another of my cards on the same scope already has."""
    if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
        raise DayInvalid(field="day")
    with transaction.atomic():
        card = DoublingCard.objects.select_for_update().filter(pk=card_id, user_id=user.pk).first()
        if card is None:
            raise NotFound(field="cardId")
        if card.status not in (DoublingCard.Status.UNUSED, DoublingCard.Status.SCHEDULED):
            raise CardNotUsable(field="cardId")
        today = clock.now().date()
        if not (today < day <= card.expires_at.date()):
            raise DayInvalid(field="day")
        taken = DoublingCard.objects.filter(user_id=user.pk, scope=card.scope, day=day).exclude(
            status=DoublingCard.Status.REVOKED).exclude(pk=card.pk).exists()
        if taken:
            raise DayInvalid(field="day")
        card.day, card.status = day, DoublingCard.Status.SCHEDULED
        try:
            with transaction.atomic():
                card.save(update_fields=["day", "status"])
        except IntegrityError as exc:  # another card took the day at the same moment
            raise DayInvalid(field="day") from exc
        return card


def pay_doubling_day(*, user: Any, scope: str, day: dt.date, interest: int, reference: str) -> int:
    """Loans: `user` earned `interest` fen on `scope` on `day`. If a card is scheduled for that day, pay the
    same again from the marketing budget, once (a second call for the card returns 0 unless it repeats the
    first reference, which returns the amount paid). Returns the extra paid."""
    scope = clean_scope(scope)
    if not is_int(interest, minimum=0):
        raise ValidationFailed("Interest is a whole number of fen ≥ 0.", code="AMOUNT_INVALID", field="interest")
    if not isinstance(reference, str) or not REFERENCE_RE.match(reference):
        raise ValidationFailed("A reference is 1 to 100 letters, digits or -_:. characters.",
                               code="REFERENCE_INVALID", field="reference")
    cards = DoublingCard.objects.filter(user_id=user.pk, scope__in=scopes_covering(scope), day=day,
                                        status__in=[DoublingCard.Status.SCHEDULED, DoublingCard.Status.PAID])
    found = cards.order_by("id").first()
    if found is None or interest == 0:
        return 0
    with transaction.atomic():
        # The campaign before the card, as a clawback does (campaign → referrer → cards): no deadlock.
        campaign = Campaign.objects.select_for_update().get(pk=found.campaign_id)
        card = cards.select_for_update().filter(pk=found.pk).first()
        if card is None:
            return 0  # revoked meanwhile
        if card.status == DoublingCard.Status.PAID:
            return card.paid_amount if card.paid_reference == reference else 0
        entry = wallet.pay_from_marketing_budget(
            user_id=user.pk, amount=interest, kind=DOUBLING_KIND, allocation=campaign,
            idempotency_key=f"referrals:doubling:{card.pk}", memo=f"收益翻倍卡 {reference}"[:140])
        card.status, card.paid_amount, card.paid_entry = DoublingCard.Status.PAID, interest, entry
        card.paid_reference = reference
        card.save(update_fields=["status", "paid_amount", "paid_entry", "paid_reference"])
        tell(user.pk, event="referrals.doubling_paid", title="收益翻倍卡",
             body=f"{day.isoformat()} 的收益已翻倍，多得 {format_fen(interest)}。")
        return interest
