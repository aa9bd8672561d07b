"""Which branch a client manager works at, for apps that may not import advisors.

advisors owns staff records (`ManagerProfile.branch`); referrals ranks client managers per branch but sits in a
layer that may not import advisors. So advisors registers a provider from its AppConfig.ready() and readers ask
`branches_of(user_ids)` (core.user_lookups underneath). Nobody registered: everyone reads as "".
"""

from __future__ import annotations

from collections.abc import Sequence

from backend.core import user_lookups


def register_branch_provider(provider: user_lookups.UserLookup) -> None:
    """Register `provider(user_ids) -> {user_id: branch}`; one provider (registering it again is a no-op)."""
    user_lookups.register("branch", provider)


def branches_of(user_ids: Sequence[int]) -> dict[int, str]:
    """Each user's branch ("" for users who are not client managers or when nobody provides branches)."""
    return user_lookups.look_up("branch", user_ids)
