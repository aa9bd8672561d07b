"""Periodic loan jobs, each idempotent (run twice, nothing happens twice)."""

from __future__ import annotations

from celery import shared_task

from backend.notifications.schedule import register_periodic

from . import services


@shared_task(name="loans.expire_unfunded_requests")
def expire_unfunded_requests() -> int:
    """Void every pledge of requests past their funding deadline."""
    return services.expire_unfunded_requests()


register_periodic("loans.expire_unfunded_requests", expire_unfunded_requests, 300)


@shared_task(name="loans.scan_loans")
def scan_loans() -> int:
    """Reminders, penalties, defaults and write-offs as of today."""
    return services.scan_loans()


register_periodic("loans.scan_loans", scan_loans, 3600)
