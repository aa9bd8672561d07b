"""Customer measures other apps report, for rules computed above them (the advisors app's customer tiers).

advisors may not import wallet, loans or referrals, yet its tier rules use balances, loans repaid and
referrals. Each of those apps registers a provider here (from its AppConfig.ready()) returning a measure for
a batch of users; a measure nobody provides reads as 0 for everyone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Provider = Callable[[Sequence[int]], dict[int, int]]

BALANCE_FEN = "balance_fen"  # the customer's wallet balance, in fen
LOANS_REPAID = "loans_repaid"  # loans the customer repaid in full, on time
REFERRALS = "referrals"  # friends the customer referred who became customers

_providers: dict[str, Provider] = {}


def register_metric(name: str, provider: Provider) -> None:
    """Register `provider(user_ids) -> {user_id: value}` for a measure; one provider per measure."""
    existing = _providers.get(name)
    if existing is not None and existing is not provider:
        raise ValueError(f"customer metric {name!r} already has a provider")
    _providers[name] = provider


def measure(name: str, user_ids: Sequence[int]) -> dict[int, int]:
    """The measure for each user (0 when nobody provides it or it has no value for a user)."""
    provider = _providers.get(name)
    values = provider(user_ids) if provider is not None and user_ids else {}
    return {uid: int(values.get(uid, 0)) for uid in user_ids}
