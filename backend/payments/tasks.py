"""Periodic payments jobs, each idempotent (a second run, or two workers, refunds nothing twice)."""

from __future__ import annotations

from celery import shared_task

from backend.notifications.schedule import register_periodic

from . import services


@shared_task(name="payments.expire_red_packets")
def expire_red_packets() -> int:
    """Refund the rest of red packets unopened after 24 hours."""
    return services.expire_red_packets()


register_periodic("payments.expire_red_packets", expire_red_packets, 60)


@shared_task(name="payments.expire_transfers")
def expire_transfers() -> int:
    """Refund friend transfers not accepted within 24 hours."""
    return services.expire_transfers()


register_periodic("payments.expire_transfers", expire_transfers, 60)


@shared_task(name="payments.remind_due_bills")
def remind_due_bills() -> int:
    """Remind participants who have not paid an open AA bill (once per REMINDER_HOURS per bill)."""
    return services.remind_due_bills()


register_periodic("payments.remind_due_bills", remind_due_bills, 3600)
