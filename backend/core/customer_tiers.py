"""Customer tiers for apps the advisors app sits above (campaigns limits offers to tiers).

advisors computes each customer's tier (advisors.services.tiers: core / important / ordinary), but campaigns
may not import advisors. advisors registers a lookup from its AppConfig.ready() (core.user_lookups underneath);
campaigns asks `tiers_of`. With no lookup registered (advisors not installed) every user's tier reads as "".
"""

from __future__ import annotations

from collections.abc import Sequence

from backend.core import user_lookups


def register_tier_lookup(lookup: user_lookups.UserLookup) -> None:
    """Register `lookup(user_ids) -> {user_id: tier}`; one lookup (registering the same one again is a no-op)."""
    user_lookups.register("tier", lookup)


def tiers_of(user_ids: Sequence[int]) -> dict[int, str]:
    """Each user's tier code ("" when unknown)."""
    return user_lookups.look_up("tier", user_ids)


def tier_of(user_id: int) -> str:
    return tiers_of([user_id])[user_id]
