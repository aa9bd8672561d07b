"""Payments configuration: defaults here, overridable with ``settings.QUANZI_PAYMENTS = {...}`` (read at call
time, so tests and operators change a limit without a restart)."""

from __future__ import annotations

from typing import Any

from backend.core.appsettings import app_setting

DEFAULTS: dict[str, Any] = {
    # Friend transfers not accepted within this many hours are refunded (the hold is voided) by a scan.
    "TRANSFER_EXPIRY_HOURS": 24,
    # What one user may send in friend transfers per calendar day (UTC), in fen, by KYC level
    # (accounts.User.KycLevel: 0 none, 1 basic, 2 verified, 3 full). Declined and refunded ones do not count.
    "TRANSFER_DAILY_LIMIT_BY_KYC": {0: 20_000, 1: 500_000, 2: 5_000_000, 3: 20_000_000},
    # Red packets: the rest is refunded after this many hours; at most this many parts (and never more
    # parts than the conversation has members).
    "PACKET_EXPIRY_HOURS": 24,
    "PACKET_MAX_PARTS": 100,
    "GREETING_MAX_CHARS": 40,
    # AA bills: at most this many participants; a reminder at most every REMINDER_HOURS per bill.
    "BILL_MAX_PARTICIPANTS": 100,
    "BILL_TITLE_MAX_CHARS": 40,
    "REMINDER_HOURS": 24,
    # Money actions (send, grab, pay, accept, settle) per user per minute.
    "MONEY_ACTIONS_PER_MINUTE": 30,
    # How many people a card lists (the card document is small; GraphQL has the full lists).
    "CARD_LIST_MAX": 30,
}


def payments_setting(name: str) -> Any:
    return app_setting("QUANZI_PAYMENTS", DEFAULTS, name)
