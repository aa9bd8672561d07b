"""Periodic campaigns jobs, each idempotent (a second run expires nothing twice)."""

from __future__ import annotations

from celery import shared_task

from backend.notifications.schedule import register_periodic

from . import services


@shared_task(name="campaigns.expire_points")
def expire_points() -> int:
    """Expire what is left of points lots past their expiry."""
    return services.expire_points()


@shared_task(name="campaigns.expire_coupons")
def expire_coupons() -> int:
    """Mark unused coupons past their validity expired."""
    return services.expire_coupons()


register_periodic("campaigns.expire_points", expire_points, 3600)
register_periodic("campaigns.expire_coupons", expire_coupons, 3600)
