"""Periodic chat jobs. Idempotent: running one twice, or on two workers, pushes nothing twice."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="chat.push_missed_messages", ignore_result=True)
def push_missed_messages() -> dict[str, int]:
    """Push messages that arrived while a member's socket was live and are still unread after it closed."""
    return services.push_missed_messages()
