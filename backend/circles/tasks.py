"""Periodic circles jobs. Idempotent: an event's reminder is claimed in the transaction that writes it."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="circles.send_event_reminders", ignore_result=True)
def send_event_reminders() -> int:
    """Remind members going to events that start soon (once per event)."""
    return services.send_event_reminders()
