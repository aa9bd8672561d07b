"""Loans configuration: defaults here, overridable with ``settings.QUANZI_LOANS = {...}`` (read at call time)."""

from __future__ import annotations

from typing import Any

from backend.core.appsettings import app_setting

DEFAULTS: dict[str, Any] = {
    # The annual rate a request may ask, in basis points (12%).
    "RATE_CAP_BP": 1200,
    # Penalty interest on overdue instalments: the loan's rate × PENALTY_MULTIPLIER_PCT / 100, never above
    # PENALTY_CAP_BP (annual, simple, accrued per day after the grace period).
    "PENALTY_MULTIPLIER_PCT": 150,
    "PENALTY_CAP_BP": 1800,
    "MIN_TERM_MONTHS": 1,
    "MAX_TERM_MONTHS": 60,
    # Pledges are whole multiples of this ticket (100 yuan).
    "TICKET_FEN": 10_000,
    # The borrower needs this KYC level (accounts.User.KycLevel: 2 = ID checked).
    "MIN_KYC_LEVEL": 2,
    # Borrowing limit: the best trust score among the chosen circles × this many fen, less what the borrower
    # already owes or asks for elsewhere (docs/architecture.md, "Loans").
    "LIMIT_FEN_PER_TRUST_POINT": 20_000,
    "MAX_FUNDING_DAYS": 30,
    "PURPOSE_MAX_CHARS": 200,
    # Arrears: remind this many days before a due date (and on the day); no penalty within the grace period;
    # default (reveal + blacklist) at DEFAULT_AFTER_DAYS overdue; write-off WRITE_OFF_AFTER_DAYS after default.
    "REMIND_DAYS_BEFORE": 3,
    "GRACE_DAYS": 3,
    "DEFAULT_AFTER_DAYS": 30,
    "WRITE_OFF_AFTER_DAYS": 180,
}


def loans_setting(name: str) -> Any:
    return app_setting("QUANZI_LOANS", DEFAULTS, name)
