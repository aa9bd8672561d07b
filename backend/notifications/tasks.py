"""Celery tasks of the notifications app: push rows after commit, and the periodic sweep."""

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
    _schedule_next(notification_id, result)
    return result.state


@shared_task(name="notifications.deliver_pushes", ignore_result=True, acks_late=True)
def deliver_pushes(notification_ids: list[int]) -> dict[str, int]:
    """Push the rows one transaction wrote (one message per commit instead of one per row). Idempotent, as
    `deliver_push`; a row whose delivery crashes is left failed with a retry time (logged by the service)
    and does not stop the others — the sweep retries it."""
    counts: dict[str, int] = {}
    for notification_id in dict.fromkeys(notification_ids):
        try:
            result = services.deliver_push(notification_id=notification_id)
        except Exception:
            state = "error"
        else:
            _schedule_next(notification_id, result)
            state = result.state
        counts[state] = counts.get(state, 0) + 1
    return counts


def _schedule_next(notification_id: int, result: services.PushResult) -> None:
    if result.next_attempt_at is not None and not deliver_push.app.conf.task_always_eager:
        deliver_push.apply_async((notification_id,), eta=result.next_attempt_at)


@shared_task(name="notifications.sweep_pushes", ignore_result=True)
def sweep_pushes() -> dict[str, int]:
    """Deliver rows still pending (lost enqueue), due retries and ended deferrals. Idempotent."""
    return services.sweep_pending_pushes(limit=settings.PUSH["SWEEP_BATCH"])
