"""Referral configuration: defaults here, overridable with ``settings.QUANZI_REFERRALS = {...}`` (read at call
time). Per-campaign numbers (boost, cap, bonus range, holding period, budget) live on the Campaign row."""

from __future__ import annotations

from typing import Any

from backend.core.appsettings import app_setting

DEFAULTS: dict[str, Any] = {
    # A new user may claim a referral code only this many hours after sign-up (and only once, ever).
    "CLAIM_WINDOW_HOURS": 72,
    # Anonymous click recording: per client IP per minute.
    "CLICKS_PER_IP_PER_MINUTE": 60,
    # Referral claims per user per minute (codes cannot be guessed by trying them).
    "CLAIMS_PER_USER_PER_MINUTE": 10,
    # Share-code creations per user per minute.
    "SHARES_PER_USER_PER_MINUTE": 30,
    # Velocity rule: more sign-ups than this attributed to one referrer within an hour raise a flag.
    "VELOCITY_SIGNUPS_PER_HOUR": 20,
    # How many due qualifications one scan processes.
    "SCAN_BATCH": 200,
    # A yield-doubling card must be used (its day chosen and reached) within this many days of award.
    "DOUBLING_CARD_VALID_DAYS": 90,
}


def referrals_setting(name: str) -> Any:
    return app_setting("QUANZI_REFERRALS", DEFAULTS, name)
