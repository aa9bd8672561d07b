"""Per-user facts one app owns and apps it may not import read: the owner registers a lookup under a name
from its AppConfig.ready(), readers ask `look_up(name, user_ids)`. core.staff_directory (client managers'
branches), core.customer_tiers (customer tiers) and core.customer_metrics (balances, loans repaid, referrals:
numbers advisors' tier rules read from apps it may not import) are the named faces of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

UserLookup = Callable[[Sequence[int]], Mapping[int, Any]]

_lookups: dict[str, UserLookup] = {}


def register(name: str, lookup: UserLookup) -> None:
    """Register `lookup(user_ids) -> {user_id: value}` as the one lookup for `name` (the same one again is a no-op)."""
    existing = _lookups.get(name)
    if existing is not None and existing is not lookup:
        raise ValueError(f"a {name} lookup is already registered")
    _lookups[name] = lookup


def values_of(name: str, user_ids: Sequence[int]) -> Mapping[int, Any]:
    """What the lookup answers for these users, as it answers it (users it does not know are absent; nobody
    registered: nobody is known)."""
    lookup = _lookups.get(name)
    return lookup(user_ids) if lookup is not None and user_ids else {}


def look_up(name: str, user_ids: Sequence[int]) -> dict[int, str]:
    """Each user's value as text ("" for users the lookup does not know, or when nobody registered one)."""
    user_ids = list(user_ids)
    values = values_of(name, user_ids)
    return {uid: str(values.get(uid) or "") for uid in user_ids}
