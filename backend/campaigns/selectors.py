"""Reads of the campaigns app, scoped to what the caller may see, and the operations' numbers."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet, Sum

from backend.accounts.models import User
from backend.core import clock, customer_tiers

from .models import Campaign, Coupon, CouponType, Draw, PointsAccount, PointsLeg
from .services import segment_allows, user_region


def points_balance(user: User) -> int:
    account = PointsAccount.objects.filter(owner=user).first()
    return account.balance if account else 0


def statement_of(user: User) -> QuerySet[PointsLeg]:
    """My points movements, newest first."""
    return PointsLeg.objects.filter(account__owner=user).select_related("entry").order_by("-id")


def coupons_of(user: User) -> QuerySet[Coupon]:
    return Coupon.objects.filter(owner=user).select_related("coupon_type")


def draws_of(user: User) -> QuerySet[Draw]:
    return Draw.objects.filter(user=user).select_related("campaign", "prize")


def campaigns_for(user: User) -> QuerySet[Campaign]:
    """Active campaigns that have started (ended ones stay visible: their seed is revealed) in my region and
    open to my customer tier."""
    region, tier = user_region(user.pk), customer_tiers.tier_of(user.pk)
    allowed = [c.pk for c in Campaign.objects.filter(is_active=True, starts_at__lte=clock.now())
               if segment_allows(c.regions, c.tiers, region=region, tier=tier)]
    return Campaign.objects.filter(pk__in=allowed)


def claimable_coupon_types(user: User) -> list[CouponType]:
    now = clock.now()
    region, tier = user_region(user.pk), customer_tiers.tier_of(user.pk)
    rows = CouponType.objects.filter(claimable=True, valid_from__lte=now, valid_until__gt=now).order_by("id")
    return [t for t in rows if segment_allows(t.eligible_regions, t.eligible_tiers, region=region, tier=tier)]


def public_campaigns() -> QuerySet[Campaign]:
    """Campaigns anyone may audit (no sign-in): every campaign that has started. Their draw lists carry no
    user identity (public_draws)."""
    return Campaign.objects.filter(starts_at__lte=clock.now())


def public_draws(campaign: Campaign) -> QuerySet[Draw]:
    """A campaign's draws in id order with only what a replay needs — the draw id (the HMAC message is
    "<campaign id>:<draw id>"), the odds table at draw time, the roll, the picked slot and the outcome — and
    nothing that names or times a user (no user, chance, coupon, entry or timestamp columns are read)."""
    return (Draw.objects.filter(campaign=campaign).order_by("id")
            .only("id", "campaign_id", "roll", "total_weight", "odds", "slot_prize_id", "prize_id", "outcome"))


@dataclass
class CampaignStats:
    issued: int = 0
    claimed: int = 0
    redeemed: int = 0
    draws: int = 0
    wins: int = 0
    budget: int = 0
    spent: int = 0


def campaign_stats(campaign: Campaign) -> CampaignStats:
    """Coupons of the campaign (its coupon types and its prizes) issued, claimed, redeemed; draws; cost."""
    coupons = Coupon.objects.filter(Q(coupon_type__campaign=campaign) | Q(pk__in=Draw.objects.filter(
        campaign=campaign, coupon__isnull=False).values("coupon_id")))
    counts = coupons.aggregate(issued=Count("id"), claimed=Count("id", filter=Q(source=Coupon.Source.CLAIMED)),
                               redeemed=Count("id", filter=Q(status=Coupon.Status.REDEEMED)))
    draws = Draw.objects.filter(campaign=campaign).aggregate(n=Count("id"),
                                                              wins=Count("id", filter=Q(prize__isnull=False)))
    return CampaignStats(issued=counts["issued"], claimed=counts["claimed"], redeemed=counts["redeemed"],
                         draws=draws["n"], wins=draws["wins"], budget=campaign.budget, spent=campaign.spent)


def points_invariant_problems() -> list[str]:
    """Accounts whose balance differs from the sum of their legs, and entries whose legs do not sum to zero."""
    problems = []
    sums = dict(PointsLeg.objects.values("account_id").annotate(s=Sum("amount")).values_list("account_id", "s"))
    for account in PointsAccount.objects.all():
        if account.balance != sums.get(account.pk, 0):
            problems.append(f"points account {account.pk}: balance {account.balance} != legs {sums.get(account.pk, 0)}")
    unbalanced = PointsLeg.objects.values("entry_id").annotate(s=Sum("amount")).exclude(s=0)
    problems += [f"points entry {row['entry_id']} sums to {row['s']}" for row in unbalanced]
    return problems
