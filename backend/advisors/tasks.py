"""Celery tasks of the advisors app: idempotent, keyed by a business id."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="advisors.deliver_broadcast", autoretry_for=(Exception,), retry_backoff=True, max_retries=5)
def deliver_broadcast(broadcast_id: int) -> int:
    """Deliver a broadcast; running it again sends only to whoever was not reached yet."""
    return services.deliver_broadcast(broadcast_id=broadcast_id).delivered_count


@shared_task(name="advisors.compute_tiers")
def compute_tiers() -> int:
    """Nightly: recompute customer tiers from the documented rules (services.tiers)."""
    return services.compute_tiers()
