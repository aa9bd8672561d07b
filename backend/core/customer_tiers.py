"""Customer tiers for apps the advisors app sits above (campaigns limits offers to tiers).

advisors computes each customer's tier (advisors.services.tiers: core / important / ordinary), but campaigns
may not import advisors. advisors registers a lookup here from its AppConfig.ready(); campaigns asks
`tiers_of`. With no lookup registered (advisors not installed) every user's tier reads as "".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

TierLookup = Callable[[Sequence[int]], dict[int, str]]

_lookup: list[TierLookup] = []


def register_tier_lookup(lookup: TierLookup) -> None:
    """Register `lookup(user_ids) -> {user_id: tier}`; one lookup (registering the same one again is a no-op)."""
    if _lookup and _lookup[0] is not lookup:
        raise ValueError("customer tiers already have a lookup")
    _lookup[:] = [lookup]


def tiers_of(user_ids: Sequence[int]) -> dict[int, str]:
    """Each user's tier code ("" when unknown)."""
    values = _lookup[0](user_ids) if _lookup and user_ids else {}
    return {uid: str(values.get(uid, "")) for uid in user_ids}


def tier_of(user_id: int) -> str:
    return tiers_of([user_id])[user_id]
