"""Reads of the referrals app, scoped to what the caller may see, and the two questions loans asks:

    active_boost_bp(user, scope, at=None) -> int   # extra yield in basis points on `scope` at `at`
    yield_doubling_on(user, day, scope="lending") -> bool   # a doubling card is scheduled for that day
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, F, Max, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from backend.core import clock, staff_directory

from .models import (
    LENDING,
    Attribution,
    Campaign,
    DoublingCard,
    RateBoost,
    Reward,
    ShareClick,
    ShareCode,
)
from .services._common import clean_scope, scopes_covering


def _pk(user: Any) -> int:
    return int(getattr(user, "pk", user))


def active_boosts(user: Any, scope: str, at: dt.datetime | None = None) -> QuerySet[RateBoost]:
    """Boosts in force for the user on `scope` at `at` (a product scope also gets lending-wide boosts)."""
    at = at or clock.now()
    return RateBoost.objects.filter(user_id=_pk(user), scope__in=scopes_covering(clean_scope(scope)),
                                    starts_at__lte=at, ends_at__gt=at, revoked_at__isnull=True)


def active_boost_bp(user: Any, scope: str, at: dt.datetime | None = None) -> int:
    """The extra yield, in basis points, loans adds for this lender on `scope` at `at`: the sum of active
    boosts, never more than the largest cap they were granted under."""
    totals = active_boosts(user, scope, at).aggregate(total=Sum("bp"), cap=Max("cap_bp"))
    return min(totals["total"] or 0, totals["cap"] or 0)


def cap_headroom_bp(user: Any, scope: str, at: dt.datetime | None = None) -> tuple[int, int]:
    """(cap, headroom) in bp for the user on `scope`: the cap of the running campaign on that scope (or of
    their active boosts), and how much more boost it still allows."""
    active = active_boost_bp(user, scope, at)
    campaign_cap = (Campaign.objects.filter(scope__in=scopes_covering(scope), is_active=True)
                    .aggregate(cap=Max("cap_bp"))["cap"])
    boost_cap = active_boosts(user, scope, at).aggregate(cap=Max("cap_bp"))["cap"]
    cap = max(campaign_cap or 0, boost_cap or 0)
    return cap, max(0, cap - active)


def yield_doubling_on(user: Any, day: dt.date, scope: str = LENDING) -> bool:
    """Whether the lender's interest on `scope` is doubled on `day` (a card is scheduled for it)."""
    return DoublingCard.objects.filter(user_id=_pk(user), scope__in=scopes_covering(clean_scope(scope)), day=day,
                                       status=DoublingCard.Status.SCHEDULED).exists()


# --- what a user may see -----------------------------------------------------------------------------------


def share_codes_of(user: Any) -> QuerySet[ShareCode]:
    return ShareCode.objects.filter(owner_id=_pk(user)).select_related("campaign")


def doubling_cards_of(user: Any) -> QuerySet[DoublingCard]:
    return DoublingCard.objects.filter(user_id=_pk(user))


def welcome_bonus_of(user: Any) -> Reward | None:
    """The reward that paid (or refused) my welcome bonus as a referee."""
    return Reward.objects.filter(referee_id=_pk(user)).select_related("campaign", "welcome_packet").first()


def attribution_of(user: Any) -> Attribution | None:
    """Who referred me (my own attribution as a referee)."""
    return Attribution.objects.filter(referee_id=_pk(user)).select_related("campaign").first()


def running_campaigns() -> QuerySet[Campaign]:
    now = clock.now()
    return Campaign.objects.filter(Q(is_active=True) & Q(starts_at__lte=now)
                                   & (Q(ends_at__isnull=True) | Q(ends_at__gt=now)))


# --- funnels -----------------------------------------------------------------------------------------------


@dataclass
class Funnel:
    """shares → clicks → sign-ups → qualified → rewarded."""

    shares: int = 0
    clicks: int = 0
    signups: int = 0
    qualified: int = 0
    rewarded: int = 0

    def add(self, other: Funnel) -> None:
        for name in ("shares", "clicks", "signups", "qualified", "rewarded"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def funnels_by_code(codes: QuerySet[ShareCode]) -> dict[int, Funnel]:
    """The funnel of each code, in four grouped queries whatever the number of codes."""
    out: dict[int, Funnel] = defaultdict(Funnel)
    for pk, shares in codes.values_list("pk", "share_count"):
        out[pk].shares = shares
    ids = list(out)
    for pk, n in (ShareClick.objects.filter(share_code_id__in=ids).values("share_code_id")
                  .annotate(n=Count("id")).values_list("share_code_id", "n")):
        out[pk].clicks = n
    for pk, signups, qualified in (Attribution.objects.filter(share_code_id__in=ids).values("share_code_id")
                                   .annotate(s=Count("id"), q=Count("id", filter=Q(qualified_at__isnull=False)))
                                   .values_list("share_code_id", "s", "q")):
        out[pk].signups, out[pk].qualified = signups, qualified
    for pk, n in (Reward.objects.filter(attribution__share_code_id__in=ids, status=Reward.Status.GRANTED)
                  .values("attribution__share_code_id").annotate(n=Count("id"))
                  .values_list("attribution__share_code_id", "n")):
        out[pk].rewarded = n
    return dict(out)


def funnel_of(codes: QuerySet[ShareCode]) -> Funnel:
    total = Funnel()
    for funnel in funnels_by_code(codes).values():
        total.add(funnel)
    return total


def campaign_funnel(campaign: Campaign) -> Funnel:
    return funnel_of(ShareCode.objects.filter(campaign=campaign))


def budget_burn(campaign: Campaign, *, days: int = 30) -> list[tuple[dt.date, int]]:
    """Welcome bonuses and doubling payouts paid per day (gross of clawbacks), the last `days` days with any."""
    rows = (Reward.objects.filter(campaign=campaign, welcome_amount__gt=0)
            .annotate(day=TruncDate("created_at")).values("day").annotate(paid=Sum("welcome_amount"))
            .values_list("day", "paid"))
    by_day: dict[dt.date, int] = defaultdict(int)
    for day, paid in rows:
        by_day[day] += paid
    for day, paid in (DoublingCard.objects.filter(campaign=campaign, status=DoublingCard.Status.PAID)
                      .values_list("day", "paid_amount")):
        by_day[day] += paid
    return sorted(by_day.items())[-days:]


@dataclass
class LeaderRow:
    user_id: int
    display_name: str
    branch: str
    funnel: Funnel = field(default_factory=Funnel)


def staff_leaderboard(campaign: Campaign | None = None, *, branch: str | None = None,
                      limit: int = 100) -> list[LeaderRow]:
    """Client managers ranked by rewarded, then qualified, then sign-ups, from their staff share codes."""
    codes = ShareCode.objects.filter(is_staff=True)
    if campaign is not None:
        codes = codes.filter(campaign=campaign)
    owners = dict(codes.values_list("pk", "owner_id"))
    branches = staff_directory.branches_of(sorted(set(owners.values())))  # advisors' ManagerProfile.branch
    if branch is not None:
        codes = codes.filter(owner_id__in=[uid for uid, b in branches.items() if b == branch])
        owners = {code: owner for code, owner in owners.items() if branches[owner] == branch}
    names = dict(codes.values_list("owner_id", F("owner__display_name")))
    rows: dict[int, LeaderRow] = {}
    for code_id, funnel in funnels_by_code(codes).items():
        owner = owners[code_id]
        row = rows.setdefault(owner, LeaderRow(user_id=owner, display_name=names.get(owner, ""),
                                               branch=branches.get(owner, "")))
        row.funnel.add(funnel)
    ranked = sorted(rows.values(), key=lambda r: (-r.funnel.rewarded, -r.funnel.qualified, -r.funnel.signups,
                                                  r.user_id))
    return ranked[:limit]


def rewarded_referral_counts(user_ids: Sequence[int]) -> dict[int, int]:
    """Friends each referrer brought in who qualified and were rewarded (not clawed back): the `referrals`
    customer measure (core.customer_metrics), which the advisors app's tier rules read."""
    rows = (Reward.objects.filter(referrer_id__in=list(user_ids), status=Reward.Status.GRANTED)
            .values("referrer_id").annotate(n=Count("id")).values_list("referrer_id", "n"))
    return dict(rows)
