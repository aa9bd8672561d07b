"""Periodic referral jobs, each idempotent (a second run, or two workers, grant nothing twice)."""

from __future__ import annotations

from celery import shared_task

from backend.notifications.schedule import register_periodic

from . import services


@shared_task(name="referrals.process_due_qualifications")
def process_due_qualifications() -> int:
    """Settle qualifying events whose holding period has passed and grant or reject their rewards."""
    return services.process_due_qualifications()


register_periodic("referrals.process_due_qualifications", process_due_qualifications, 300)
