"""Customer measures other apps report, for rules computed above them (the advisors app's customer tiers).

advisors may not import wallet, loans or referrals, yet its tier rules use balances, loans repaid and
referrals. Each of those apps registers a provider here (from its AppConfig.ready()) returning a measure for
a batch of users; a measure nobody provides reads as 0 for everyone.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import user_lookups

Provider = user_lookups.UserLookup  # user ids → {user id: int}

BALANCE_FEN = "balance_fen"  # the customer's wallet balance, in fen
LOANS_REPAID = "loans_repaid"  # loans the customer repaid in full, on time
REFERRALS = "referrals"  # friends the customer referred who became customers


def _lookup_name(metric: str) -> str:
    return f"metric:{metric}"


def register_metric(name: str, provider: Provider) -> None:
    """Register `provider(user_ids) -> {user_id: value}` for a measure; one provider per measure."""
    user_lookups.register(_lookup_name(name), provider)


def measure(name: str, user_ids: Sequence[int]) -> dict[int, int]:
    """The measure for each user (0 when nobody provides it or it has no value for a user)."""
    user_ids = list(user_ids)
    values = user_lookups.values_of(_lookup_name(name), user_ids)
    return {uid: int(values.get(uid, 0)) for uid in user_ids}
