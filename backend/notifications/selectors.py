"""Reads of the notifications app, scoped to the recipient."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Notification


def inbox_of(user_id: int) -> QuerySet[Notification]:
    return Notification.objects.filter(recipient_id=user_id).order_by("-id")


def unread_count_of(user_id: int) -> int:
    return Notification.objects.filter(recipient_id=user_id, read_at__isnull=True).count()
