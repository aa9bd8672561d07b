"""Periodic wallet jobs. Each is idempotent: running it twice, or on two workers, settles nothing twice."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="wallet.void_expired_holds")
def void_expired_holds() -> int:
    """Release holds whose expiry passed (e.g. an unclaimed red packet after 24 hours)."""
    return services.void_expired_holds()


@shared_task(name="wallet.recheck_pending_bank_operations")
def recheck_pending_bank_operations() -> int:
    """Ask the bank gateway about top-ups and withdrawals that got no definite answer."""
    return services.recheck_pending_bank_operations()
