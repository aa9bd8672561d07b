"""Offline events (线下活动): an admin posts a salon or meet-up; members RSVP (waitlist when full); reminders go
through notifications; attendance is marked and counts toward trust."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction

from backend.core import clock
from backend.core.errors import Conflict, NotFound, ValidationFailed
from backend.core.values import is_int
from backend.notifications.services import notify

from ..models import CircleEvent, CircleMember, Rsvp
from ._base import ADMINS, clean_line, clean_text, limit, lock_circle, member_seat, require_role

Going, Waitlisted, Cancelled = Rsvp.Status.GOING, Rsvp.Status.WAITLISTED, Rsvp.Status.CANCELLED


def create_event(*, actor: Any, circle_id: int, title: str, place: str, starts_at: dt.datetime, capacity: int,
                 description: str = "") -> CircleEvent:
    title = clean_line(title, field="title", code="INVALID_TITLE", max_chars=64)
    place = clean_line(place, field="place", code="INVALID_PLACE", max_chars=200)
    description = clean_text(description, field="description", code="INVALID_DESCRIPTION", max_chars=2000)
    if not isinstance(starts_at, dt.datetime) or starts_at.tzinfo is None or starts_at <= clock.now():
        raise ValidationFailed("The event starts in the future.", code="INVALID_START", field="startsAt")
    if not is_int(capacity, minimum=1) or capacity > limit("EVENT_MAX_CAPACITY"):
        raise ValidationFailed(f"1 to {limit('EVENT_MAX_CAPACITY')} places.", code="INVALID_CAPACITY", field="capacity")
    with transaction.atomic():
        circle = lock_circle(circle_id)
        require_role(member_seat(circle, actor.pk), *ADMINS)
        return CircleEvent.objects.create(circle=circle, created_by=actor, title=title, place=place,
                                          description=description, starts_at=starts_at, capacity=capacity)


def _lock_event(user: Any, event_id: object) -> tuple[CircleEvent, CircleMember]:
    """Lock an event of a circle the user is an active member of (others: NOT_FOUND)."""
    if not is_int(event_id):
        raise NotFound(field="eventId")
    event = CircleEvent.objects.select_for_update().filter(pk=event_id, cancelled_at__isnull=True).first()
    if event is None:
        raise NotFound(field="eventId")
    seat = CircleMember.objects.filter(circle_id=event.circle_id, user=user, left_at__isnull=True).first()
    if seat is None:
        raise NotFound(field="eventId")
    return event, seat


def rsvp(*, user: Any, event_id: int, going: bool) -> Rsvp:
    """Going (or waitlisted when full), or cancel — which gives the place to the first on the waitlist."""
    with transaction.atomic():
        event, _ = _lock_event(user, event_id)
        if event.starts_at <= clock.now():
            raise Conflict("The event has started.", code="EVENT_STARTED", field="eventId")
        row = Rsvp.objects.filter(event=event, user=user).first()
        if going:
            if row is not None and row.status in (Going, Waitlisted):
                return row
            taken = Rsvp.objects.filter(event=event, status=Going).count()
            status = Going if taken < event.capacity else Waitlisted
            if row is None:
                return Rsvp.objects.create(event=event, user=user, status=status)
            row.status, row.updated_at = status, clock.now()
            row.save(update_fields=["status", "updated_at"])
            return row
        if row is None or row.status == Cancelled:
            return row or Rsvp.objects.create(event=event, user=user, status=Cancelled)
        was_going = row.status == Going
        row.status, row.updated_at = Cancelled, clock.now()
        row.save(update_fields=["status", "updated_at"])
        if was_going:
            first = Rsvp.objects.filter(event=event, status=Waitlisted).order_by("updated_at", "id").first()
            if first is not None:
                first.status, first.updated_at = Going, clock.now()
                first.save(update_fields=["status", "updated_at"])
                notify(recipient_id=first.user_id, kind="circle", event="circles.event_place",
                       title="活动名额 A place for you", body=event.title)
        return row


def cancel_event(*, actor: Any, event_id: int) -> CircleEvent:
    """An admin calls an event off; everyone going or waitlisted is told."""
    with transaction.atomic():
        event, seat = _lock_event(actor, event_id)
        require_role(seat, *ADMINS)
        event.cancelled_at = clock.now()
        event.save(update_fields=["cancelled_at"])
        for uid in Rsvp.objects.filter(event=event, status__in=(Going, Waitlisted)).values_list("user_id", flat=True):
            notify(recipient_id=uid, kind="circle", event="circles.event_cancelled",
                   title=f"活动取消 {event.title}", body=f"{event.starts_at:%Y-%m-%d %H:%M} · {event.place}")
    return event


def mark_attendance(*, actor: Any, event_id: int, user_id: int, attended: bool) -> Rsvp:
    """An admin marks who came (counts toward their trust in the circle)."""
    with transaction.atomic():
        event, seat = _lock_event(actor, event_id)
        require_role(seat, *ADMINS)
        row = Rsvp.objects.filter(event=event, user_id=user_id if is_int(user_id) else 0, status=Going).first()
        if row is None:
            raise NotFound(field="userId")
        row.attended = bool(attended)
        row.save(update_fields=["attended"])
    return row


def send_event_reminders() -> int:
    """Remind everyone going to events that start within EVENT_REMIND_HOURS. Idempotent: an event is
    claimed (reminded_at set) in the transaction that writes its notifications."""
    now = clock.now()
    sent = 0
    due = CircleEvent.objects.filter(cancelled_at__isnull=True, reminded_at__isnull=True, starts_at__gt=now,
                                     starts_at__lte=now + dt.timedelta(hours=limit("EVENT_REMIND_HOURS")))
    for event_id in due.values_list("id", flat=True):
        with transaction.atomic():
            claimed = CircleEvent.objects.filter(pk=event_id, reminded_at__isnull=True).update(reminded_at=now)
            if not claimed:
                continue
            event = CircleEvent.objects.get(pk=event_id)
            for uid in Rsvp.objects.filter(event=event, status=Going).values_list("user_id", flat=True):
                notify(recipient_id=uid, kind="circle", event="circles.event_reminder",
                       title=f"活动提醒 {event.title}", body=f"{event.starts_at:%Y-%m-%d %H:%M} · {event.place}")
                sent += 1
    return sent
