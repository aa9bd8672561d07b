"""Celery tasks of the notifications app: push one row after commit, and the periodic sweep."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from . import services


@shared_task(name="notifications.deliver_push", ignore_result=True, acks_late=True)
def deliver_push(notification_id: int) -> str:
    """Push one notification. Idempotent: the row is claimed first, so duplicates of this task are harmless.

    A retry or deferral is scheduled for its time (never before FCM's Retry-After); the sweep is the safety net.
    """
    result = services.deliver_push(notification_id=notification_id)
    if result.next_attempt_at is not None and not deliver_push.app.conf.task_always_eager:
        deliver_push.apply_async((notification_id,), eta=result.next_attempt_at)
    return result.state


@shared_task(name="notifications.sweep_pushes", ignore_result=True)
def sweep_pushes() -> dict[str, int]:
    """Deliver rows still pending (lost enqueue), due retries and ended deferrals. Idempotent."""
    return services.sweep_pending_pushes(limit=settings.PUSH["SWEEP_BATCH"])
