"""Writes of the notifications app. `notify` is the one entry point every other app uses."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from backend.core import clock, realtime

from .models import Notification


def notify(
    *,
    recipient_id: int,
    kind: str,
    event: str,
    title: str,
    body: str = "",
    payload: dict[str, Any] | None = None,
    conversation_id: int | None = None,
    collapse_key: str = "",
) -> Notification:
    """Record a notification in the caller's transaction; sockets hear of it and push is tried after commit."""
    if kind not in Notification.Kind.values:
        raise ValueError(f"unknown notification kind {kind!r}")
    notification = Notification.objects.create(
        recipient_id=recipient_id, kind=kind, event=event, title=title[:120], body=body,
        payload=payload or {}, conversation_id=conversation_id, collapse_key=collapse_key,
    )
    realtime.ring_on_commit(
        realtime.user_group(recipient_id),
        {"type": "client.event", "frame": {"type": "notification", "notification": inbox_frame(notification)}},
    )
    return notification


def inbox_frame(notification: Notification) -> dict[str, Any]:
    from backend.core.ids import encode_id

    return {
        "id": encode_id("Notification", notification.pk),
        "kind": notification.kind,
        "event": notification.event,
        "title": notification.title,
        "body": notification.body,
        "payload": notification.payload,
        "created_at": notification.created_at.isoformat(),
    }


def mark_read(*, recipient_id: int, notification_ids: list[int] | None = None) -> int:
    """Mark some (or all) of the recipient's notifications read. Returns how many changed."""
    with transaction.atomic():
        rows = Notification.objects.filter(recipient_id=recipient_id, read_at__isnull=True)
        if notification_ids is not None:
            rows = rows.filter(pk__in=notification_ids)
        return rows.update(read_at=clock.now())
