"""Reads of the notifications app, scoped to the recipient."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.db.models import Exists, OuterRef, Q, QuerySet

from backend.core import clock

from .models import ConversationMute, Notification, NotificationPreferences


def inbox_of(user_id: int) -> QuerySet[Notification]:
    return Notification.objects.filter(recipient_id=user_id).order_by("-id")


def unread_count_of(user_id: int) -> int:
    return Notification.objects.filter(recipient_id=user_id, read_at__isnull=True).count()


def preferences_of(user_id: int) -> NotificationPreferences:
    """The user's preferences; an unsaved row with the defaults when they never changed any."""
    prefs = NotificationPreferences.objects.filter(user_id=user_id).first()
    return prefs if prefs is not None else NotificationPreferences(user_id=user_id)


def _mute_in_force(at: dt.datetime | None = None) -> Q:
    at = at or clock.now()
    return Q(muted_until__isnull=True) | Q(muted_until__gt=at)


def _active_mutes(user_id: int, at: dt.datetime | None = None) -> QuerySet[ConversationMute]:
    return ConversationMute.objects.filter(user_id=user_id).filter(_mute_in_force(at))


def is_conversation_muted(user_id: int, conversation_id: int, *, at: dt.datetime | None = None) -> bool:
    return _active_mutes(user_id, at).filter(conversation_id=conversation_id).exists()


def muted_conversation_ids(user_id: int, conversation_ids: Iterable[int] | None = None) -> set[int]:
    """Which of these conversations the user has muted (all of them if None): one query, for chat's lists."""
    mutes = _active_mutes(user_id)
    if conversation_ids is not None:
        mutes = mutes.filter(conversation_id__in=list(conversation_ids))
    return set(mutes.values_list("conversation_id", flat=True))


def conversation_muted_flag(*, user_ref: str = "user_id", conversation_ref: str = "conversation_id",
                            at: dt.datetime | None = None) -> Exists:
    """An annotation for rows that carry a user id and a conversation id (chat's memberships): whether that
    user has that conversation muted at `at` (default: now). ConversationMute is the one record of a mute;
    chat shows and honours it through this, in the same query as the rows themselves (no query per row)."""
    return Exists(ConversationMute.objects.filter(
        user_id=OuterRef(user_ref), conversation_id=OuterRef(conversation_ref)).filter(_mute_in_force(at)))


def has_notification_since(*, recipient_id: int, conversation_id: int, event: str, since: dt.datetime) -> bool:
    """Whether the recipient got a notification of this event about this conversation at or after `since`."""
    return Notification.objects.filter(recipient_id=recipient_id, conversation_id=conversation_id, event=event,
                                       created_at__gte=since).exists()
