"""Missed-message pushes (Zulip's missed-message notifications, as pushes).

A message that arrives while one of the member's sockets is live gets no notification row (the socket shows
it; see `messages._push_idle_members`). If the member then closes the app without reading it, nothing would
ever tell their phone. So a periodic scan — rows are the truth, no timer per message — looks at seats with
unread messages: once the user has had no live socket for `MISSED_PUSH_AFTER_SECONDS` (the socket closed at
`core.presence.last_seen`), the newest unread message that arrived before then is pushed, once per
conversation, through the ordinary outbox (`notify`), so the push policy (preferences, mutes, quiet hours,
collapsing, a socket that came back) applies as for every other push.

`Membership.missed_push_seq` is the business key: the scan settles a seat up to the conversation's newest
seq with a compare-and-set UPDATE in the same transaction that writes the row, so two scans (beat firing
twice, `run_due_jobs` next to beat) never push a seat's messages twice.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.db.models import F, Q

from backend.core import clock, presence
from backend.notifications import selectors as notification_selectors
from backend.notifications.services import notify

from .. import events, limits
from ..models import Membership, Message
from .messages import preview_of

log = logging.getLogger("quanzi.chat")

CHUNK = 500  # seats read per query


def push_missed_messages(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Scan every seat with unread, unsettled messages in a recently active conversation; push or settle each.

    Returns how many seats ended each way (`pushed`, `settled`, `waiting`). Idempotent."""
    now = now or clock.now()
    lookback = dt.timedelta(seconds=limits.get("MISSED_PUSH_LOOKBACK_SECONDS"))
    candidates = (
        Membership.objects.filter(left_at__isnull=True, conversation__last_activity_at__gte=now - lookback)
        .filter(Q(conversation__last_seq__gt=F("last_read_seq")) & Q(conversation__last_seq__gt=F("missed_push_seq")))
        .annotate(is_muted=notification_selectors.conversation_muted_flag())
        .select_related("conversation").order_by("pk")
    )
    counts = {"pushed": 0, "settled": 0, "waiting": 0}
    after_pk = 0
    while True:
        chunk = list(candidates.filter(pk__gt=after_pk)[:CHUNK])
        if not chunk:
            return counts
        after_pk = chunk[-1].pk
        for outcome in _handle_chunk(chunk, now):
            counts[outcome] += 1


def _handle_chunk(seats: list[Membership], now: dt.datetime) -> list[str]:
    users = {seat.user_id for seat in seats}
    online = presence.online_among(users)
    seen = presence.last_seen_among(users - online)
    quiet_for = dt.timedelta(seconds=limits.get("MISSED_PUSH_AFTER_SECONDS"))
    wants_push: dict[int, bool] = {}
    outcomes: list[str] = []
    settle: dict[int, list[int]] = {}  # newest seq → seats with nothing to push up to it
    for seat in seats:
        closed = dt.datetime.fromtimestamp(seen[seat.user_id], dt.UTC) if seat.user_id in seen else None
        if seat.user_id in online or closed is not None and closed > now - quiet_for:
            outcomes.append("waiting")  # the socket shows it / they may still read it on the phone just put down
            continue
        if seat.user_id not in wants_push:
            wants_push[seat.user_id] = notification_selectors.preferences_of(seat.user_id).allows("message")
        message = None
        if closed is not None and wants_push[seat.user_id] and not seat.is_muted:
            message = _missed_message(seat, closed)
        if message is None:
            settle.setdefault(seat.conversation.last_seq, []).append(seat.pk)
            outcomes.append("settled")
            continue
        try:
            outcomes.append(_push(seat, message))
        except Exception:  # one bad seat must not stop the scan; it is tried again next time
            log.exception("missed-message push for seat %s failed", seat.pk)
            outcomes.append("waiting")
    for head, pks in settle.items():
        Membership.objects.filter(pk__in=pks, missed_push_seq__lt=head).update(missed_push_seq=head)
    return outcomes


def _missed_message(seat: Membership, closed: dt.datetime) -> Message | None:
    """The newest message the member has not read that arrived while their socket was live (before it
    closed) — later ones found them idle and got a row when they were sent — unless a notification of this
    conversation since then already told them."""
    start = max(seat.last_read_seq, seat.missed_push_seq, seat.visible_from_seq - 1)
    closed += dt.timedelta(seconds=1)  # last_seen is kept in whole seconds; a later message's row is found below
    message = (
        Message.objects.filter(conversation_id=seat.conversation_id, seq__gt=start, created_at__lt=closed,
                               recalled_at__isnull=True)
        .exclude(kind=Message.Kind.SYSTEM).exclude(sender_id=seat.user_id)
        .select_related("sender").order_by("-seq").first()
    )
    if message is not None and notification_selectors.has_notification_since(
            recipient_id=seat.user_id, conversation_id=seat.conversation_id, event="chat.message",
            since=message.created_at):
        return None
    return message


def _push(seat: Membership, message: Message) -> str:
    """Settle the seat and write the row in one transaction; only the scan whose compare-and-set wins writes."""
    conversation = seat.conversation
    with transaction.atomic():
        won = Membership.objects.filter(pk=seat.pk, missed_push_seq=seat.missed_push_seq).update(
            missed_push_seq=conversation.last_seq)
        if not won:
            return "settled"  # another scan got here first
        notify(recipient_id=seat.user_id, kind="message", event="chat.message",
               title=conversation.title or (message.sender.display_name if message.sender else ""),
               body=preview_of(message),
               payload={"conversation_id": events.conversation_gid(conversation.pk), "seq": message.seq},
               conversation_id=conversation.pk, collapse_key=f"conv-{conversation.pk}")
    return "pushed"
