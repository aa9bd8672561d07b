"""Office hours and the automatic reply outside them.

A manager's hours are weekdays (0=Monday) and an opening and closing time in their time zone. A customer who
writes in the advisor conversation while the office is closed gets one automatic reply per closed window:
the window is named by the moment the office next opens, and `AutoReply` is unique per (conversation, that
moment), so a second message in the same night gets none and the first one after the next closing gets one.
The reply is a system message (no sender), so it never counts as the manager having answered: the
conversation stays in the manager's waiting queue.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.db import IntegrityError, transaction

from backend.chat import services as chat_services
from backend.core import clock
from backend.core.message_hooks import PostedMessage

from .models import Assignment, AutoReply, CustomerRecord, ManagerProfile

DEFAULT_AWAY_MESSAGE = ("Thank you for your message. Your client manager is out of office and will reply when the "
                        "office opens at {opens}.")


def is_open(profile: ManagerProfile, at: dt.datetime) -> bool:
    local = at.astimezone(zoneinfo.ZoneInfo(profile.timezone))
    return local.weekday() in profile.office_days and profile.office_opens <= local.time() < profile.office_closes


def next_opening(profile: ManagerProfile, at: dt.datetime) -> dt.datetime | None:
    """The next moment the office opens after `at` (None when no day is an office day)."""
    zone = zoneinfo.ZoneInfo(profile.timezone)
    local = at.astimezone(zone)
    for offset in range(8):
        day = local.date() + dt.timedelta(days=offset)
        if day.weekday() not in profile.office_days:
            continue
        opens = dt.datetime.combine(day, profile.office_opens, tzinfo=zone)
        if opens > local:
            return opens
    return None


def on_message_posted(posted: PostedMessage) -> None:
    """core.message_hooks listener (inside the sending transaction): auto-reply to a customer out of hours."""
    if posted.conversation_kind != "advisor":
        return
    record = CustomerRecord.objects.filter(conversation_id=posted.conversation_id).only("customer_id").first()
    if record is None or posted.sender_id != record.customer_id:
        return
    assignment = Assignment.objects.filter(customer_id=record.customer_id, ended_at__isnull=True).first()
    profile = ManagerProfile.objects.filter(user_id=assignment.manager_id).first() if assignment else None
    now = clock.now()
    if profile is None or is_open(profile, now):
        return
    opens = next_opening(profile, now)
    window = opens or dt.datetime(9999, 1, 1, tzinfo=dt.UTC)
    try:
        with transaction.atomic():
            AutoReply.objects.create(conversation_id=posted.conversation_id, window_opens_at=window)
    except IntegrityError:
        return  # this window already had its reply
    opens_text = opens.strftime("%a %H:%M") if opens else "the next office day"
    text = profile.away_message or DEFAULT_AWAY_MESSAGE.format(opens=opens_text)
    chat_services.post_system_notice(conversation_id=posted.conversation_id, event="auto_reply", text=text,
                                     opens_at=opens.isoformat() if opens else None)
