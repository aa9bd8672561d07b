"""Per-user facts one app owns and apps it may not import read: the owner registers a lookup under a name
from its AppConfig.ready(), readers ask `look_up(name, user_ids)`. core.staff_directory (client managers'
branches) and core.customer_tiers (customer tiers) are the named faces of it; both are advisors' facts read by
referrals and campaigns, which sit in layers that may not import advisors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

UserLookup = Callable[[Sequence[int]], dict[int, str]]

_lookups: dict[str, UserLookup] = {}


def register(name: str, lookup: UserLookup) -> None:
    """Register `lookup(user_ids) -> {user_id: value}` as the one lookup for `name` (the same one again is a no-op)."""
    existing = _lookups.get(name)
    if existing is not None and existing is not lookup:
        raise ValueError(f"a {name} lookup is already registered")
    _lookups[name] = lookup


def look_up(name: str, user_ids: Sequence[int]) -> dict[int, str]:
    """Each user's value ("" for users the lookup does not know, or when nobody registered one)."""
    user_ids = list(user_ids)
    lookup = _lookups.get(name)
    values = lookup(user_ids) if lookup is not None and user_ids else {}
    return {uid: str(values.get(uid) or "") for uid in user_ids}
