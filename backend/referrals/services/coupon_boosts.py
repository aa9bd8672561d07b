"""A rate boost granted from outside a referral: campaigns' rate-boost coupons (loans already adds every active
boost through referrals.selectors.active_boost_bp, so a coupon boost raises the lender's yield the same way).

The coupon's boost stacks on top of the referral boosts: it is granted under a cap of the user's current cap on
the scope plus its own bp, so a referrer already at the referral cap still gets the coupon's extra. It counts in
boost_sum like any boost (a later referral reward has that much less headroom). Idempotency is the caller's:
campaigns grants once per coupon under the coupon's row lock and keeps the boost's id.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Max

from backend.core import clock

from ..models import RateBoost
from ._common import clean_scope, scopes_covering
from .rewards import lock_referrer


def grant_coupon_boost(*, user_id: int, scope: str, bp: int, days: int) -> RateBoost:
    """Give the lender +`bp` on `scope` for `days` days from now (inside the caller's transaction)."""
    scope, now = clean_scope(scope), clock.now()
    lock_referrer(user_id)  # serialize with referral rewards stacking boosts for the same user
    current_cap = (RateBoost.objects.filter(user_id=user_id, scope__in=scopes_covering(scope), starts_at__lte=now,
                                            ends_at__gt=now, revoked_at__isnull=True)
                   .aggregate(cap=Max("cap_bp"))["cap"] or 0)
    return RateBoost.objects.create(user_id=user_id, scope=scope, bp=bp, cap_bp=current_cap + bp, starts_at=now,
                                    ends_at=now + dt.timedelta(days=days))
