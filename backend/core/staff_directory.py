"""Which branch a client manager works at, for apps that may not import advisors.

advisors owns staff records (`ManagerProfile.branch`); referrals ranks client managers per branch but sits in a
layer that may not import advisors. So advisors registers a provider here from its AppConfig.ready() (the style
of core.customer_metrics) and readers ask `branches_of(user_ids)`. Nobody registered: everyone reads as "".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

BranchProvider = Callable[[Sequence[int]], dict[int, str]]

_provider: list[BranchProvider] = []


def register_branch_provider(provider: BranchProvider) -> None:
    """Register `provider(user_ids) -> {user_id: branch}`; one provider (registering it again is a no-op)."""
    if _provider and _provider[0] is not provider:
        raise ValueError("a branch provider is already registered")
    _provider[:] = [provider]


def branches_of(user_ids: Sequence[int]) -> dict[int, str]:
    """Each user's branch ("" for users who are not client managers or when nobody provides branches)."""
    user_ids = list(user_ids)
    values = _provider[0](user_ids) if _provider and user_ids else {}
    return {uid: values.get(uid, "") or "" for uid in user_ids}
