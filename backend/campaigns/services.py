"""Writes of the campaigns app, one function per use case, each one transaction.

Lock order, always: campaign row → prize rows (ascending id) → draw chance → coupon-type row → coupon row →
activity rows with points owed → points accounts (ascending id) → ledger accounts (inside wallet.services,
ascending id). Redemption locks the coupon, then its campaign (cash-back) or the referrer row in referrals (rate
boost), then ledger accounts; nothing locks a coupon after a campaign, so no cycle.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone

from backend.accounts.models import User
from backend.core import clock, customer_tiers
from backend.core.activity_hooks import ReportedActivity, ReportedReversal
from backend.core.errors import Conflict, DomainError, NotFound, PermissionDenied, ValidationFailed
from backend.notifications.services import notify

# One error per meaning across marketing apps: the same codes and messages as referrals'.
from backend.referrals.services import BudgetExhausted, CampaignNotRunning, ReferenceConflict
from backend.referrals.services.coupon_boosts import grant_coupon_boost
from backend.wallet import services as wallet
from backend.wallet.services import IdempotencyKeyInvalid

from . import fairness
from .models import (
    Activity,
    Campaign,
    Coupon,
    CouponGrant,
    CouponType,
    Draw,
    DrawChance,
    PointsAccount,
    PointsEntry,
    PointsLeg,
    PointsLot,
    PointsRule,
    Prize,
    UserRegion,
)

KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
REFERENCE_RE = re.compile(r"^[A-Za-z0-9_:.\-]{1,100}$")
CASH_BACK_KIND = "campaign_cash_back"
CASH_PRIZE_KIND = "campaign_cash_prize"


# --- errors -------------------------------------------------------------------------------------------------


class InsufficientPoints(DomainError):
    code = "INSUFFICIENT_POINTS"
    default_message = "You do not have enough points."


class CouponExpired(Conflict):
    code = "COUPON_EXPIRED"
    default_message = "This coupon has expired."


class CouponAlreadyRedeemed(Conflict):
    code = "COUPON_ALREADY_REDEEMED"
    default_message = "This coupon was already used."


class CouponNotAvailable(Conflict):
    code = "COUPON_NOT_AVAILABLE"
    default_message = "This coupon cannot be claimed now."


class CouponOutOfStock(Conflict):
    code = "COUPON_OUT_OF_STOCK"
    default_message = "All of these coupons have been claimed."


class CouponLimitReached(Conflict):
    code = "COUPON_LIMIT_REACHED"
    default_message = "You already claimed as many of these coupons as allowed."


class NotEligible(PermissionDenied):
    code = "NOT_ELIGIBLE"
    default_message = "This offer is not available to you."


class NoFeeToWaive(Conflict):
    code = "NO_FEE_TO_WAIVE"
    default_message = "The app charges no fee, so there is nothing for this coupon to waive."


class CampaignNotDrawable(Conflict):
    code = "CAMPAIGN_NOT_DRAWABLE"
    default_message = "This campaign has no lottery."


class NoDrawChance(Conflict):
    code = "NO_DRAW_CHANCE"
    default_message = "Make a qualifying transaction first to earn a draw."


class DailyDrawLimit(Conflict):
    code = "DAILY_DRAW_LIMIT"
    default_message = "You have used today's draws for this campaign."


# --- shared -------------------------------------------------------------------------------------------------


def _csv(value: str) -> set[str]:
    return {part.strip() for part in value.split(",") if part.strip()}


def user_region(user_id: int) -> str:
    """The user's branch/region code ('' when staff have not set it)."""
    return UserRegion.objects.filter(user_id=user_id).values_list("region", flat=True).first() or ""


def in_region(allowed: str, user_id: int) -> bool:
    regions = _csv(allowed)
    return not regions or user_region(user_id) in regions


def in_tier(allowed: str, user_id: int) -> bool:
    """Whether the user's customer tier (advisors computes it; read through core.customer_tiers) is allowed."""
    tiers = _csv(allowed)
    return not tiers or customer_tiers.tier_of(user_id) in tiers


def segment_allows(regions: str, tiers: str, *, region: str, tier: str) -> bool:
    """Pure check for lists (read the user's region and tier once, then test many offers)."""
    return (not _csv(regions) or region in _csv(regions)) and (not _csv(tiers) or tier in _csv(tiers))


def _tell(user_id: int, *, event: str, title: str, body: str) -> None:
    notify(recipient_id=user_id, kind="marketing", event=event, title=title, body=body, payload={},
           collapse_key=f"campaigns:{event}")


# --- points ledger ------------------------------------------------------------------------------------------


def system_points_account(kind: str) -> PointsAccount:
    account, _ = PointsAccount.objects.get_or_create(kind=kind, owner=None)
    return account


def points_account(user_id: int) -> PointsAccount:
    account, _ = PointsAccount.objects.get_or_create(owner_id=user_id, defaults={"kind": PointsAccount.Kind.USER})
    return account


def _lock_points(ids: Iterable[int]) -> dict[int, PointsAccount]:
    return {a.pk: a for a in PointsAccount.objects.select_for_update().filter(pk__in=set(ids)).order_by("id")}


def _post(kind: str, *, reference: str, memo: str, legs: list[tuple[int, int]]) -> PointsEntry:
    """Write one balanced points entry (legs sum to zero) and move the balances (accounts locked by caller)."""
    assert sum(amount for _, amount in legs) == 0, legs
    entry = PointsEntry.objects.create(kind=kind, reference=reference, memo=memo[:200], created_at=clock.now())
    PointsLeg.objects.bulk_create([PointsLeg(entry=entry, account_id=a, amount=n) for a, n in legs])
    for account_id, amount in legs:
        PointsAccount.objects.filter(pk=account_id).update(balance=F("balance") + amount)
    return entry


def earn_points(*, user_id: int, points: int, reference: str, memo: str, valid_days: int) -> PointsEntry:
    """Credit points (one lot, expiring after `valid_days`). Idempotent on reference."""
    existing = PointsEntry.objects.filter(reference=reference).first()
    if existing is not None:
        return existing
    source, target = system_points_account(PointsAccount.Kind.ISSUED), points_account(user_id)
    with transaction.atomic():
        owed = list(Activity.objects.select_for_update().filter(user_id=user_id, points_owed__gt=0).order_by("id"))
        _lock_points([source.pk, target.pk])
        entry = _post(PointsEntry.Kind.EARN, reference=reference, memo=memo,
                      legs=[(source.pk, -points), (target.pk, points)])
        lot = PointsLot.objects.create(account=target, earned_by=entry, amount=points, remaining=points,
                                       expires_at=clock.now() + dt.timedelta(days=valid_days) if valid_days else None)
        _settle_owed(owed, lot, source_id=source.pk)
    return entry


def _settle_owed(owed: list[Activity], lot: PointsLot, *, source_id: int) -> None:
    """New points first pay back what reversed activities still owe (rows and accounts locked by the caller)."""
    for activity in owed:
        if not lot.remaining:
            break
        taken = min(activity.points_owed, lot.remaining)
        _post(PointsEntry.Kind.REVERSE, reference=f"owed:{activity.pk}:{lot.earned_by_id}",
              memo=f"撤销补扣 {activity.reference}", legs=[(lot.account_id, -taken), (source_id, taken)])
        lot.remaining -= taken
        PointsLot.objects.filter(pk=lot.pk).update(remaining=lot.remaining)
        activity.points_owed -= taken
        activity.save(update_fields=["points_owed"])


def _take_from_lots(account_id: int, points: int) -> None:
    """Use up `points` from the account's lots, those expiring first first (account locked by caller)."""
    lots = (PointsLot.objects.select_for_update().filter(account_id=account_id, remaining__gt=0)
            .order_by(F("expires_at").asc(nulls_last=True), "id"))
    left = points
    for lot in lots:
        if not left:
            break
        used = min(lot.remaining, left)
        PointsLot.objects.filter(pk=lot.pk).update(remaining=F("remaining") - used)
        left -= used
    assert left == 0, "lots disagree with the balance"


def spend_points(*, user_id: int, points: int, reference: str, memo: str) -> PointsEntry:
    """Debit points (a draw's cost). INSUFFICIENT_POINTS, and nothing changes, when the balance is short."""
    sink, account = system_points_account(PointsAccount.Kind.SPENT), points_account(user_id)
    with transaction.atomic():
        locked = _lock_points([sink.pk, account.pk])
        if locked[account.pk].balance < points:
            raise InsufficientPoints(field="campaignId")
        _take_from_lots(account.pk, points)
        return _post(PointsEntry.Kind.SPEND, reference=reference, memo=memo,
                     legs=[(account.pk, -points), (sink.pk, points)])


def expire_points(*, limit: int = 500) -> int:
    """Expire what is left of lots past their expiry date (the periodic scan). Idempotent: one entry per lot."""
    now, done = clock.now(), 0
    sink = system_points_account(PointsAccount.Kind.EXPIRED)
    lot_ids = list(PointsLot.objects.filter(remaining__gt=0, expires_at__lte=now).order_by("id")
                   .values_list("id", "account_id")[:limit])
    for lot_id, account_id in lot_ids:
        with transaction.atomic():
            _lock_points([sink.pk, account_id])
            lot = PointsLot.objects.select_for_update().get(pk=lot_id)
            if lot.remaining <= 0:
                continue
            _post(PointsEntry.Kind.EXPIRE, reference=f"expire:lot:{lot.pk}", memo="积分过期 Points expired",
                  legs=[(account_id, -lot.remaining), (sink.pk, lot.remaining)])
            PointsLot.objects.filter(pk=lot.pk).update(remaining=0)
            done += 1
    return done


def _clean_activity(kind: object, amount: object, reference: object, occurred_at: object) -> None:
    if not isinstance(kind, str) or not KIND_RE.match(kind):
        raise ValidationFailed("The kind is a short snake_case word.", code="KIND_INVALID", field="kind")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise ValidationFailed("The amount is a whole number of fen, 0 or more.", code="AMOUNT_INVALID",
                               field="amount")
    if not isinstance(reference, str) or not REFERENCE_RE.match(reference):
        raise ValidationFailed("The reference is 1-100 letters, digits or _:.- characters.",
                               code="REFERENCE_INVALID", field="reference")
    if not isinstance(occurred_at, dt.datetime) or occurred_at.tzinfo is None:
        raise ValidationFailed("occurred_at is an aware datetime.", code="OCCURRED_AT_INVALID", field="occurredAt")


def record_activity(*, user: User, kind: str, amount: int, reference: str, occurred_at: dt.datetime) -> Activity:
    """Other apps report what a user did (a transfer, a repaid instalment, a referral…): it earns points by the
    active rules and, for running 'lottery after a transaction' campaigns, a draw. Idempotent on reference: the
    same report again returns the first; different details under a used reference → REFERENCE_CONFLICT."""
    _clean_activity(kind, amount, reference, occurred_at)
    existing = Activity.objects.filter(reference=reference).first()
    if existing is None:
        try:
            with transaction.atomic():
                return _record_new_activity(user=user, kind=kind, amount=amount, reference=reference,
                                            occurred_at=occurred_at)
        except IntegrityError:  # the same reference raced in from another worker
            existing = Activity.objects.get(reference=reference)
    if (existing.user_id, existing.kind, existing.amount) != (user.pk, kind, amount):
        raise ReferenceConflict(field="reference")
    return existing


def _record_new_activity(*, user: User, kind: str, amount: int, reference: str, occurred_at: dt.datetime) -> Activity:
    activity = Activity.objects.create(user=user, kind=kind, amount=amount, reference=reference,
                                       occurred_at=occurred_at, created_at=clock.now())
    rules = [r for r in PointsRule.objects.filter(activity_kind=kind, is_active=True) if amount >= r.min_amount]
    points = sum(r.fixed_points + r.points_per_yuan * (amount // 100) for r in rules)
    if points:
        activity.points = points
        activity.points_entry = earn_points(user_id=user.pk, points=points, reference=f"activity:{reference}",
                                            memo=f"{kind} {reference}"[:200],
                                            valid_days=max(r.valid_days for r in rules))
        activity.save(update_fields=["points", "points_entry"])
    campaigns = Campaign.objects.filter(template=Campaign.Template.TRANSACTION_LOTTERY, is_active=True,
                                        trigger_kind=kind, trigger_min_amount__lte=amount,
                                        starts_at__lte=occurred_at, ends_at__gt=occurred_at)
    for campaign in campaigns:
        if in_region(campaign.regions, user.pk) and in_tier(campaign.tiers, user.pk):
            DrawChance.objects.create(campaign=campaign, user=user, activity=activity, created_at=clock.now())
    return activity


def on_reported_activity(activity: ReportedActivity) -> Activity:
    """The listener campaigns registers in core.activity_hooks: a transfer, repayment or referral reward
    reported by a lower app (after its commit) earns points and draws like any record_activity call; the
    reference makes a replayed event earn nothing twice."""
    user = User.objects.get(pk=activity.user_id)
    return record_activity(user=user, kind=activity.kind, amount=activity.amount, reference=activity.reference,
                           occurred_at=activity.occurred_at)


def reverse_activity(*, reference: str) -> Activity:
    """The reported action was undone (its journal entry reversed, its referral reward clawed back): take back
    what it earned. Unused draw chances it gave are voided (draws already made stand). Its points come back
    from the lot it earned as far as that is unspent; what was already spent comes back from the rest of the
    balance (soonest-expiring lots first); what the balance cannot cover is recorded as `points_owed` and taken
    from the next points the user earns. What expired before the reversal is not owed (it was never of use).
    A points balance never goes negative. Idempotent."""
    with transaction.atomic():
        activity = Activity.objects.select_for_update().filter(reference=reference).first()
        if activity is None:
            raise NotFound(field="reference")
        if activity.reversed_at is not None:
            return activity
        DrawChance.objects.filter(activity=activity, used_at__isnull=True).update(used_at=clock.now())
        if activity.points_entry_id:
            source = system_points_account(PointsAccount.Kind.ISSUED)
            account = points_account(activity.user_id)
            balance = _lock_points([source.pk, account.pk])[account.pk].balance
            lot = PointsLot.objects.select_for_update().get(earned_by_id=activity.points_entry_id)
            expired = -(PointsLeg.objects.filter(entry__reference=f"expire:lot:{lot.pk}", account_id=account.pk)
                        .aggregate(s=Sum("amount"))["s"] or 0)
            spent = lot.amount - lot.remaining - expired
            from_rest = min(spent, balance - lot.remaining)
            if lot.remaining:
                PointsLot.objects.filter(pk=lot.pk).update(remaining=0)
            if from_rest:
                _take_from_lots(account.pk, from_rest)
            if lot.remaining + from_rest:
                _post(PointsEntry.Kind.REVERSE, reference=f"reverse:{reference}", memo=f"撤销 {reference}"[:200],
                      legs=[(account.pk, -(lot.remaining + from_rest)), (source.pk, lot.remaining + from_rest)])
            activity.points_owed = spent - from_rest
        activity.reversed_at = clock.now()
        activity.save(update_fields=["reversed_at", "points_owed"])
    if activity.points:
        _tell(activity.user_id, event="campaigns.points_reversed", title="积分已撤销",
              body=f"相关交易已撤销，积分 {activity.points} 已扣回"
              + (f"，尚欠 {activity.points_owed}，将从之后获得的积分中扣除。" if activity.points_owed else "。"))
    return activity


def on_reported_reversal(reversal: ReportedReversal) -> Activity | None:
    """The listener campaigns registers in core.activity_hooks for undone actions (wallet.reverse_entry,
    referrals' clawback). A reference that never earned anything here is ignored."""
    if not Activity.objects.filter(reference=reversal.reference).exists():
        return None
    return reverse_activity(reference=reversal.reference)


# --- coupons ------------------------------------------------------------------------------------------------


def eligible_for(coupon_type: CouponType, user_id: int) -> bool:
    """The user's branch/region and customer tier are among the coupon type's (empty lists: everyone)."""
    return in_region(coupon_type.eligible_regions, user_id) and in_tier(coupon_type.eligible_tiers, user_id)


def claim_coupon(*, user: User, coupon_type_id: int) -> Coupon:
    """Take one coupon of a claimable type: within its validity, eligible, in stock, under the per-user limit."""
    with transaction.atomic():
        coupon_type = CouponType.objects.select_for_update().filter(pk=coupon_type_id, claimable=True).first()
        if coupon_type is None:
            raise NotFound(field="couponTypeId")
        now = clock.now()
        if not coupon_type.valid_from <= now < coupon_type.valid_until:
            raise CouponNotAvailable(field="couponTypeId")
        if not eligible_for(coupon_type, user.pk):
            raise NotEligible(field="couponTypeId")
        if coupon_type.claimed_count >= coupon_type.stock:
            raise CouponOutOfStock(field="couponTypeId")
        if Coupon.objects.filter(owner=user, coupon_type=coupon_type).count() >= coupon_type.per_user_limit:
            raise CouponLimitReached(field="couponTypeId")
        CouponType.objects.filter(pk=coupon_type.pk).update(claimed_count=F("claimed_count") + 1)
        coupon_type.claimed_count += 1
        return Coupon.objects.create(coupon_type=coupon_type, owner=user, source=Coupon.Source.CLAIMED,
                                     issued_at=now, expires_at=coupon_type.valid_until)


def issue_coupon(*, staff: User, user_id: int, coupon_type_id: int, reason: object,
                 idempotency_key: object) -> tuple[Coupon, bool]:
    """Operations give a user a coupon (a goodwill gesture, a complaint settled): like a claim it respects the
    type's validity, the user's eligibility, the stock and the per-user limit, but the type need not be
    claimable. The key makes a retry return the first coupon (replayed=True); the same key for another user or
    type → REFERENCE_CONFLICT. A CouponGrant row records who issued it, to whom and why."""
    if staff is None or not staff.is_active or not staff.is_staff:
        raise PermissionDenied("Only operations staff may issue coupons.", code="STAFF_ONLY")
    if not isinstance(idempotency_key, str) or not REFERENCE_RE.match(idempotency_key) or len(idempotency_key) < 8:
        raise IdempotencyKeyInvalid(field="idempotencyKey")
    reason = " ".join(reason.split()) if isinstance(reason, str) else ""
    if not reason or len(reason) > 200:
        raise ValidationFailed("Say why the coupon is issued (at most 200 characters).", code="REASON_REQUIRED",
                               field="reason")
    with transaction.atomic():
        coupon_type = CouponType.objects.select_for_update().filter(pk=coupon_type_id).first()
        if coupon_type is None:
            raise NotFound(field="couponTypeId")
        grant = CouponGrant.objects.select_related("coupon").filter(key=idempotency_key).first()
        if grant is not None:  # a retry (racing retries serialize on the coupon-type lock above)
            if (grant.user_id, grant.coupon_type_id) != (user_id, coupon_type.pk):
                raise ReferenceConflict(field="idempotencyKey")
            return grant.coupon, True
        user = User.objects.filter(pk=user_id, is_active=True).first()
        if user is None:
            raise NotFound("No such user.", field="userId")
        now = clock.now()
        if not coupon_type.valid_from <= now < coupon_type.valid_until:
            raise CouponNotAvailable("This coupon type is not valid now.", field="couponTypeId")
        if not eligible_for(coupon_type, user.pk):
            raise NotEligible("This coupon is not available to that customer (branch or tier).", field="userId")
        if coupon_type.claimed_count >= coupon_type.stock:
            raise CouponOutOfStock(field="couponTypeId")
        if Coupon.objects.filter(owner=user, coupon_type=coupon_type).count() >= coupon_type.per_user_limit:
            raise CouponLimitReached("That customer already has as many of these coupons as allowed.",
                                     field="userId")
        CouponType.objects.filter(pk=coupon_type.pk).update(claimed_count=F("claimed_count") + 1)
        coupon_type.claimed_count += 1
        coupon = Coupon.objects.create(coupon_type=coupon_type, owner=user, source=Coupon.Source.ISSUED,
                                       issued_at=now, expires_at=coupon_type.valid_until)
        CouponGrant.objects.create(key=idempotency_key, coupon_type=coupon_type, user=user, issued_by=staff,
                                   reason=reason, coupon=coupon, created_at=now)
    _tell(user.pk, event="campaigns.coupon_issued", title="您收到一张优惠券", body=coupon_type.name)
    return coupon, False


def issue_prize_coupon(*, user_id: int, coupon_type: CouponType) -> Coupon:
    """A coupon won in a draw: the prize's own stock limits it (not the type's claim stock or per-user limit)."""
    return Coupon.objects.create(coupon_type=coupon_type, owner_id=user_id, source=Coupon.Source.PRIZE,
                                 issued_at=clock.now(), expires_at=coupon_type.valid_until)


def redeem_coupon(*, user: User, coupon_id: int, reference: str) -> tuple[Coupon, bool]:
    """Use a coupon exactly once. `reference` names what it was used on (a transfer, a loan…): the same
    reference again returns the redeemed coupon (replayed=True); another → COUPON_ALREADY_REDEEMED. Cash-back is
    paid from the marketing budget (against the coupon type's campaign budget when it has one). Someone else's
    coupon is NOT_FOUND, like a missing one."""
    if not isinstance(reference, str) or not REFERENCE_RE.match(reference):
        raise ValidationFailed("The reference is 1-100 letters, digits or _:.- characters.",
                               code="REFERENCE_INVALID", field="reference")
    with transaction.atomic():
        coupon = (Coupon.objects.select_for_update().select_related("coupon_type")
                  .filter(pk=coupon_id, owner=user).first())
        if coupon is None:
            raise NotFound(field="couponId")
        if coupon.status == Coupon.Status.REDEEMED:
            if coupon.redeem_reference == reference:
                return coupon, True
            raise CouponAlreadyRedeemed(field="couponId")
        now = clock.now()
        if coupon.status == Coupon.Status.EXPIRED or coupon.expires_at <= now:
            raise CouponExpired(field="couponId")
        coupon_type = coupon.coupon_type
        if coupon_type.kind == CouponType.Kind.FEE_WAIVER:
            raise NoFeeToWaive(field="couponId")  # no fee exists anywhere yet: docs/architecture.md, campaigns
        if coupon_type.kind == CouponType.Kind.RATE_BOOST and coupon_type.value:
            coupon.rate_boost = grant_coupon_boost(user_id=user.pk, scope=coupon_type.boost_scope,
                                                   bp=coupon_type.value, days=coupon_type.boost_days)
        if coupon_type.kind == CouponType.Kind.CASH_BACK and coupon_type.value:
            campaign = (Campaign.objects.select_for_update().get(pk=coupon_type.campaign_id)
                        if coupon_type.campaign_id else None)
            coupon.cash_back_entry = wallet.pay_from_marketing_budget(
                user_id=user.pk, amount=coupon_type.value, kind=CASH_BACK_KIND, allocation=campaign,
                idempotency_key=f"campaigns:cashback:{coupon.pk}", memo=f"返现 {coupon_type.name}"[:100])
        coupon.status, coupon.redeemed_at, coupon.redeem_reference = Coupon.Status.REDEEMED, now, reference
        coupon.save(update_fields=["status", "redeemed_at", "redeem_reference", "cash_back_entry", "rate_boost"])
        return coupon, False


def expire_coupons(*, limit: int = 1000) -> int:
    """Mark unused coupons past their expiry expired (the periodic scan)."""
    ids = list(Coupon.objects.filter(status=Coupon.Status.AVAILABLE, expires_at__lte=clock.now())
               .values_list("id", flat=True)[:limit])
    return Coupon.objects.filter(pk__in=ids, status=Coupon.Status.AVAILABLE).update(status=Coupon.Status.EXPIRED)


# --- draws --------------------------------------------------------------------------------------------------


def _check_can_take_part(campaign: Campaign, user: User) -> None:
    if not in_region(campaign.regions, user.pk):
        raise NotEligible("This campaign is not running in your branch.", field="campaignId")
    if not in_tier(campaign.tiers, user.pk):
        raise NotEligible("This campaign is not open to you.", field="campaignId")
    now = clock.now()
    if not campaign.is_active or not campaign.has_started(now) or campaign.has_ended(now):
        raise CampaignNotRunning(field="campaignId")
    if campaign.template == Campaign.Template.SHARE_REWARD:
        raise CampaignNotDrawable(field="campaignId")


def _today_start() -> dt.datetime:
    local = timezone.localtime(clock.now())
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def draw(*, user: User, campaign_id: int) -> Draw:
    """One lottery draw, provably fair (see fairness.py). Takes a draw chance (transaction lottery) or spends
    the campaign's points price (points lottery); awards the picked prize when it is in stock and, for cash,
    within budget — otherwise the draw is recorded as no prize with the reason. Any error changes nothing."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
        if campaign is None:
            raise NotFound(field="campaignId")
        _check_can_take_part(campaign, user)
        if Draw.objects.filter(campaign=campaign, user=user,
                               created_at__gte=_today_start()).count() >= campaign.daily_draws_per_user:
            raise DailyDrawLimit(field="campaignId")
        prizes = list(Prize.objects.select_for_update().filter(campaign=campaign).order_by("id"))
        chance = None
        if campaign.template == Campaign.Template.TRANSACTION_LOTTERY:
            chance = (DrawChance.objects.select_for_update().filter(campaign=campaign, user=user,
                                                                    used_at__isnull=True).order_by("id").first())
            if chance is None:
                raise NoDrawChance(field="campaignId")
        odds = [[p.pk, p.weight] for p in prizes if p.weight] + [[None, campaign.no_prize_weight]]
        total = sum(w for _, w in odds)
        if total <= 0:
            raise CampaignNotDrawable(field="campaignId")
        result = Draw.objects.create(campaign=campaign, user=user, odds=odds, total_weight=total, chance=chance,
                                     created_at=clock.now())
        if chance is not None:
            DrawChance.objects.filter(pk=chance.pk).update(used_at=clock.now())
        if campaign.template == Campaign.Template.POINTS_LOTTERY and campaign.draw_cost_points:
            spend_points(user_id=user.pk, points=campaign.draw_cost_points,
                         reference=f"campaigns:draw:{result.pk}:cost", memo=f"抽奖 {campaign.name}"[:200])
            result.points_spent = campaign.draw_cost_points
        value, prize_id = fairness.outcome(seed=campaign.seed, campaign_id=campaign.pk, draw_id=result.pk,
                                           odds=[(p, w) for p, w in odds])
        result.roll = str(value)
        prize = next((p for p in prizes if p.pk == prize_id), None)
        result.slot_prize = prize
        _award(campaign, result, prize)
        result.save()
    if result.prize is not None:
        _tell(user.pk, event="campaigns.prize_won", title="恭喜中奖", body=f"{campaign.name}：{result.prize.name}")
    return result


def _award(campaign: Campaign, result: Draw, prize: Prize | None) -> None:
    """Give the slot's prize (rows locked by the caller). Out of stock or over budget → no prize, recorded."""
    if prize is None:
        result.outcome = Draw.Outcome.NO_PRIZE
        return
    if prize.awarded >= prize.stock:
        result.outcome = Draw.Outcome.OUT_OF_STOCK
        return
    if prize.kind == Prize.Kind.CASH:
        try:
            result.cash_entry = wallet.pay_from_marketing_budget(
                user_id=result.user_id, amount=prize.cash_amount, kind=CASH_PRIZE_KIND, allocation=campaign,
                idempotency_key=f"campaigns:prize:{result.pk}", memo=f"中奖 {prize.name}"[:100])
        except BudgetExhausted:
            result.outcome = Draw.Outcome.OVER_BUDGET
            return
    elif prize.kind == Prize.Kind.POINTS:
        earn_points(user_id=result.user_id, points=prize.points, reference=f"campaigns:draw:{result.pk}:prize",
                    memo=f"中奖 {prize.name}"[:200], valid_days=365)
    elif prize.kind == Prize.Kind.COUPON:
        result.coupon = issue_prize_coupon(user_id=result.user_id, coupon_type=prize.coupon_type)
    Prize.objects.filter(pk=prize.pk).update(awarded=F("awarded") + 1)
    prize.awarded += 1
    result.prize, result.outcome = prize, Draw.Outcome.WON


def verify_draw(*, draw: Draw, seed: str) -> dict[str, Any]:
    """Recompute a draw from a seed (the revealed one): does the seed match the published hash, and does it
    give the recorded roll and slot?"""
    if not isinstance(seed, str) or not re.fullmatch(r"[0-9a-f]{64}", seed):
        raise ValidationFailed("A seed is 64 lowercase hex characters.", code="SEED_INVALID", field="seed")
    campaign = draw.campaign
    matches_hash = fairness.seed_hash(seed) == campaign.seed_hash
    value, prize_id = fairness.outcome(seed=seed, campaign_id=campaign.pk, draw_id=draw.pk,
                                       odds=[(p, w) for p, w in draw.odds])
    return {"seed_matches_hash": matches_hash, "roll": value, "slot_prize_id": prize_id,
            "matches": matches_hash and str(value) == draw.roll and prize_id == draw.slot_prize_id}
