"""Writes of the notifications app. `notify` is the one entry point every other app uses.

The outbox: `notify` writes a row in the caller's transaction; after commit a Celery task tries to push it
(one task, and one socket doorbell hop, for all the rows a transaction wrote: `core.realtime.on_commit_batched`),
and a periodic sweep picks up whatever is still pending (a process that died between commit and enqueue,
a retry that is due, a deferral that has ended). Before sending, a worker *claims* the row with one
conditional UPDATE (pending → sending), so the after-commit task and the sweep never both send it.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import zoneinfo
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from backend.accounts.selectors import push_targets_of
from backend.accounts.services import disable_push_target
from backend.core import clock, presence, realtime
from backend.core.errors import NotFound, ValidationFailed
from backend.core.ids import encode_id
from backend.core.values import is_int

from . import push, selectors
from .insert import Embedded, RowInsert
from .models import ConversationMute, Notification, NotificationPreferences, PushDelivery
from .pushqueue import process_queue
from .signals import notification_recorded

log = logging.getLogger("quanzi.notifications")

State = Notification.PushState
MAX_IDS_PER_CALL = 100
PUSH_TASK_BATCH = 50  # rows per deliver_pushes message
PUSH_QUEUE_LINGER_SECONDS = 0.02  # how long the process's push queue gathers ids before it sends them

# Shown instead of the caller's title when the user has not opted in to previews: no names, amounts or text.
GENERIC_TITLES = {
    "message": "新消息 New message",
    "money": "账户动态 Account activity",
    "loan": "借贷动态 Loan update",
    "circle": "圈子动态 Circle update",
    "marketing": "圈子 Quanzi",
    "system": "安全提醒 Security notice",
}
HIGH_PRIORITY_KINDS = {"message", "money", "system"}


class InvalidQuietHours(ValidationFailed):
    code = "INVALID_QUIET_HOURS"
    default_message = "Quiet hours need a start and an end time (HH:MM) that differ."


class InvalidTimezone(ValidationFailed):
    code = "INVALID_TIMEZONE"
    default_message = "Unknown time zone; use an IANA name such as Asia/Shanghai."


class TooManyIds(ValidationFailed):
    code = "TOO_MANY_IDS"
    default_message = f"At most {MAX_IDS_PER_CALL} ids per call."


# --- the outbox ---------------------------------------------------------------------------------


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
    """Record a notification in the caller's transaction; sockets hear of it and push is tried after commit.

    Rows of one conversation collapse by default (`conversation:<id>`), so a burst becomes one push.
    """
    return notify_many([dict(recipient_id=recipient_id, kind=kind, event=event, title=title, body=body,
                             payload=payload, conversation_id=conversation_id, collapse_key=collapse_key)])[0]


def notify_many(items: list[dict[str, Any]]) -> list[Notification]:
    """`notify` for several rows written by one transaction (a transfer alerts both wallets): one INSERT for
    all of them, then each is announced exactly as `notify` announces one. Each item takes notify's keywords.

    The INSERT is written once per process (`insert.RowInsert`, from the model's fields) instead of being
    rebuilt by `bulk_create` on every call; the rows come back as saved instances with their ids, as before."""
    rows = _rows(items)
    if not rows:
        return []
    connection = transaction.get_connection()
    if _INSERT.supported(connection):
        notifications = _INSERT.create(connection, rows)
    else:  # a database that cannot return the ids of a multi-row INSERT
        notifications = Notification.objects.bulk_create(
            [Notification(**dict(zip(_INSERT.given, row, strict=True))) for row in rows])
    _announce(notifications)
    return notifications


def notify_many_embedded(items: list[dict[str, Any]], *, prefix: str, gate: str) -> Embedded:
    """PostgreSQL: `notify_many`'s INSERT for the caller to run inside a statement of its own (a data-modifying
    CTE, rows written only `WHERE <gate>`; see `insert.RowInsert.embedded`), so a wallet transfer's alerts cost
    no round trip of their own. After the statement, `finish(ids)` with the ids it returned gives the
    notifications, announced exactly as `notify_many` announces them; without `finish` nothing is announced."""
    rows = _rows(items)
    embedded = _INSERT.embedded(transaction.get_connection(), rows, prefix=prefix, gate=gate)

    def finish(ids: list[int]) -> list[Notification]:
        notifications = embedded.finish(ids)
        _announce(notifications)
        return notifications

    return embedded._replace(finish=finish)


def _rows(items: list[dict[str, Any]]) -> list[tuple]:
    rows = []
    for item in items:
        kind, conversation_id = item["kind"], item.get("conversation_id")
        if kind not in _KINDS:
            raise ValueError(f"unknown notification kind {kind!r}")
        collapse_key = item.get("collapse_key") or ""
        if not collapse_key and conversation_id is not None:
            collapse_key = f"conversation:{conversation_id}"
        rows.append((item["recipient_id"], kind, item["event"][:60], item["title"][:120], item.get("body") or "",
                     item.get("payload") or {}, conversation_id, collapse_key[:100]))
    return rows


def _announce(notifications: list[Notification]) -> None:
    """Sockets hear of each row after commit, its push is queued after commit, listeners are told now."""
    for notification in notifications:
        realtime.ring_on_commit(
            realtime.user_group(notification.recipient_id),
            {"type": "client.event", "frame": {"type": "notification", "notification": inbox_frame(notification)}},
        )
        _push_on_commit(notification.pk)
        notification_recorded.send(sender=Notification, notification=notification)


_KINDS = frozenset(Notification.Kind.values)
# What notify sets on a new row; every other column takes its model default.
_INSERT = RowInsert(Notification, given=("recipient_id", "kind", "event", "title", "body", "payload",
                                         "conversation_id", "collapse_key"), prepared=True)


def _push_on_commit(notification_id: int) -> None:
    """After commit, hand the row to Celery — one task per transaction for all the rows it wrote."""
    realtime.on_commit_batched("notifications.push", _enqueue_pushes, notification_id)


def _enqueue_pushes(notification_ids: list[int]) -> None:
    """After commit: the ids join this process's push queue, which sends one Celery message for the rows of
    many transactions (`pushqueue`). With eager tasks (tests, the embedded mode) they are pushed here and now,
    one call per batch. If this never happens the sweep delivers them."""
    from .tasks import deliver_pushes

    if deliver_pushes.app.conf.task_always_eager:
        _send_pushes(notification_ids)
    else:
        _PUSH_QUEUE.add(notification_ids)


def _send_pushes(notification_ids: list[int]) -> None:
    """One `deliver_pushes` message per batch (a big fan-out is split, so workers share it and a redelivered
    message repeats little)."""
    from .tasks import deliver_pushes

    for start in range(0, len(notification_ids), PUSH_TASK_BATCH):
        chunk = notification_ids[start:start + PUSH_TASK_BATCH]
        try:
            deliver_pushes.delay(chunk)
        except Exception:
            log.warning("push for notifications %s not enqueued; the sweep will deliver them", chunk,
                        exc_info=True)


_PUSH_QUEUE = process_queue(_send_pushes, linger=PUSH_QUEUE_LINGER_SECONDS, batch=PUSH_TASK_BATCH)


def inbox_frame(notification: Notification) -> dict[str, Any]:
    return {
        "id": encode_id("Notification", notification.pk),
        "kind": notification.kind,
        "event": notification.event,
        "title": notification.title,
        "body": notification.body,
        "payload": notification.payload,
        "created_at": notification.created_at.isoformat(),
    }


def retract(*, conversation_id: int, event: str, payload_match: dict[str, Any]) -> int:
    """The thing a notification reports was withdrawn (a recalled message): blank its text everywhere and
    make sure a push that has not gone out yet never does. Returns how many rows changed."""
    with transaction.atomic():
        rows = Notification.objects.filter(conversation_id=conversation_id, event=event)
        for name, value in payload_match.items():
            rows = rows.filter(**{f"payload__{name}": value})
        changed = rows.update(body="")
        rows.filter(push_state__in=[State.PENDING, State.FAILED]).update(
            push_state=State.SKIPPED, push_reason="retracted", push_next_attempt_at=None
        )
    return changed


# --- the inbox ------------------------------------------------------------------------------------


def mark_read(*, recipient_id: int, notification_ids: list[int] | None = None) -> int:
    """Mark some (or all) of the recipient's notifications read. Returns how many changed.

    Ids that are not the recipient's are NOT_FOUND and nothing changes; the user's other sockets hear
    `notification.read` so every device's badge agrees.
    """
    now = clock.now()
    with transaction.atomic():
        rows = Notification.objects.filter(recipient_id=recipient_id, read_at__isnull=True)
        if notification_ids is not None:
            ids = list(dict.fromkeys(notification_ids))
            if len(ids) > MAX_IDS_PER_CALL:
                raise TooManyIds(field="ids")
            owned = Notification.objects.filter(recipient_id=recipient_id, pk__in=ids).count()
            if owned != len(ids):
                raise NotFound(field="ids")
            rows = rows.filter(pk__in=ids)
        changed = list(rows.values_list("pk", flat=True))
        Notification.objects.filter(pk__in=changed).update(read_at=now)
        _ring_read(recipient_id, changed)
    return len(changed)


def mark_conversation_read(*, recipient_id: int, conversation_id: int) -> int:
    """Chat calls this when the user reads a conversation: its notifications stop counting and pushing."""
    with transaction.atomic():
        rows = Notification.objects.filter(
            recipient_id=recipient_id, conversation_id=conversation_id, read_at__isnull=True
        )
        changed = list(rows.values_list("pk", flat=True))
        Notification.objects.filter(pk__in=changed).update(read_at=clock.now())
        _ring_read(recipient_id, changed)
    return len(changed)


def _ring_read(recipient_id: int, changed: list[int]) -> None:
    """Tell the user's sockets which notifications were read and the new unread count (for badges)."""
    if not changed:
        return
    frame = {
        "type": "notification.read",
        "ids": [encode_id("Notification", pk) for pk in sorted(changed)[-MAX_IDS_PER_CALL:]],
        "unread_count": selectors.unread_count_of(recipient_id),
    }
    realtime.ring_on_commit(realtime.user_group(recipient_id), {"type": "client.event", "frame": frame})


# --- preferences ----------------------------------------------------------------------------------

_UNSET: Any = object()


@dataclass(frozen=True)
class QuietHours:
    start: dt.time
    end: dt.time


def parse_quiet_time(value: object, *, field: str) -> dt.time:
    """Quiet hours come in as "HH:MM" (24 h)."""
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        raise InvalidQuietHours(field=field)
    try:
        return dt.time(int(value[:2]), int(value[3:]))
    except ValueError as exc:
        raise InvalidQuietHours(field=field) from exc


def update_preferences(
    *,
    user_id: int,
    messages: bool | None = None,
    money: bool | None = None,
    loans: bool | None = None,
    circles: bool | None = None,
    marketing: bool | None = None,
    show_previews: bool | None = None,
    quiet_hours: QuietHours | None = _UNSET,
    timezone: str | None = None,
) -> NotificationPreferences:
    """Change what gets pushed. Arguments left out stay as they are; `quiet_hours=None` turns them off."""
    if quiet_hours is not _UNSET and quiet_hours is not None and quiet_hours.start == quiet_hours.end:
        raise InvalidQuietHours(field="quietHours")
    if timezone is not None:
        try:
            if not timezone or len(timezone) > 64:
                raise zoneinfo.ZoneInfoNotFoundError(timezone)
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidTimezone(field="timezone") from exc
    with transaction.atomic():
        prefs, _ = NotificationPreferences.objects.select_for_update().get_or_create(user_id=user_id)
        for name, value in (("messages", messages), ("money", money), ("loans", loans), ("circles", circles),
                            ("marketing", marketing), ("show_previews", show_previews), ("timezone", timezone)):
            if value is not None:
                setattr(prefs, name, value)
        if quiet_hours is not _UNSET:
            prefs.quiet_start = quiet_hours.start if quiet_hours else None
            prefs.quiet_end = quiet_hours.end if quiet_hours else None
        prefs.updated_at = clock.now()
        prefs.save()
    return prefs


def set_conversation_muted(
    *, user_id: int, conversation_id: int, muted: bool, until: dt.datetime | None = None
) -> bool:
    """Mute or unmute pushes from one conversation (chat calls this; it checks membership first).

    `until` mutes for a while ("8 hours"); without it the mute lasts until unmuted. Returns `muted`.
    """
    if not is_int(conversation_id, minimum=1):
        raise ValidationFailed("Unknown conversation.", code="INVALID_CONVERSATION", field="conversationId")
    if until is not None and until <= clock.now():
        raise ValidationFailed("The mute must end in the future.", code="INVALID_MUTE_UNTIL", field="until")
    with transaction.atomic():
        if muted:
            ConversationMute.objects.update_or_create(
                user_id=user_id, conversation_id=conversation_id,
                defaults={"muted_until": until, "created_at": clock.now()},
            )
        else:
            ConversationMute.objects.filter(user_id=user_id, conversation_id=conversation_id).delete()
    return muted


def quiet_hours_end(prefs: NotificationPreferences, now: dt.datetime) -> dt.datetime | None:
    """When the user's quiet hours end, if `now` falls inside them (in the user's time zone)."""
    if prefs.quiet_start is None or prefs.quiet_end is None:
        return None
    tz = zoneinfo.ZoneInfo(prefs.timezone)
    local = now.astimezone(tz)
    t, start, end = local.time(), prefs.quiet_start, prefs.quiet_end
    if start < end:
        inside, end_date = start <= t < end, local.date()
    else:  # wraps midnight, e.g. 22:00–07:00
        inside = t >= start or t < end
        end_date = local.date() if t < end else local.date() + dt.timedelta(days=1)
    if not inside:
        return None
    return dt.datetime.combine(end_date, end, tzinfo=tz)


# --- delivery ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushResult:
    """What one delivery attempt did to a row. `next_attempt_at` is set when it will be tried again."""

    state: str
    reason: str = ""
    next_attempt_at: dt.datetime | None = None


def _claimable(now: dt.datetime) -> Q:
    lease = dt.timedelta(seconds=settings.PUSH["CLAIM_LEASE_SECONDS"])
    return (
        Q(push_state=State.PENDING) & (Q(push_next_attempt_at__isnull=True) | Q(push_next_attempt_at__lte=now))
        | Q(push_state=State.FAILED, push_next_attempt_at__lte=now)
        | Q(push_state=State.SENDING, push_claimed_at__lt=now - lease)
    )


def _open_rows() -> Q:
    """Rows that will still be pushed: a newer one of these carries an older one of the same collapse key."""
    return Q(push_state__in=[State.PENDING, State.SENDING]) | Q(
        push_state=State.FAILED, push_next_attempt_at__isnull=False
    )


def deliver_push(*, notification_id: int) -> PushResult:
    """Push one notification to the recipient's devices, exactly once, unless policy says not to.

    Claims the row first (a conditional UPDATE that only one caller can win); the checks then run just
    before sending, so a user who came online, read it, or muted it since it was written is respected.
    """
    now = clock.now()
    claimed = (
        Notification.objects.filter(pk=notification_id)
        .filter(_claimable(now))
        .update(push_state=State.SENDING, push_claimed_at=now)
    )
    if not claimed:
        return PushResult("not_claimed")
    notification = Notification.objects.select_related("recipient").get(pk=notification_id)
    try:
        return _deliver_claimed(notification, now)
    except Exception:
        log.exception("push of notification %s crashed; will retry", notification_id)
        _finish(notification, State.FAILED, reason="INTERNAL: delivery crashed",
                next_attempt_at=now + _backoff(notification.push_attempts + 1), attempts=1)
        raise


def _deliver_claimed(notification: Notification, now: dt.datetime) -> PushResult:
    user = notification.recipient
    if not user.is_active:
        return _finish(notification, State.SKIPPED, reason="inactive_user")
    if notification.read_at is not None:
        return _finish(notification, State.SKIPPED, reason="read")
    prefs = selectors.preferences_of(user.pk)
    if not prefs.allows(notification.kind):
        return _finish(notification, State.SKIPPED, reason="muted_kind")
    if notification.conversation_id is not None and selectors.is_conversation_muted(
        user.pk, notification.conversation_id, at=now
    ):
        return _finish(notification, State.SKIPPED, reason="muted_conversation")
    if notification.kind != Notification.Kind.SYSTEM:
        quiet_until = quiet_hours_end(prefs, now)
        if quiet_until is not None:
            return _finish(notification, State.PENDING, reason="quiet_hours", next_attempt_at=quiet_until)
    key = notification.collapse_key
    if key:
        same_key = Notification.objects.filter(recipient_id=user.pk, collapse_key=key)
        if same_key.filter(pk__gt=notification.pk).filter(_open_rows()).exists():
            return _finish(notification, State.SKIPPED, reason="collapsed")
        window = dt.timedelta(seconds=settings.PUSH["COLLAPSE_WINDOW_SECONDS"])
        last_push = (
            same_key.exclude(pk=notification.pk).filter(pushed_at__gt=now - window)
            .order_by("-pushed_at").values_list("pushed_at", flat=True).first()
        )
        if last_push is not None:
            return _finish(notification, State.PENDING, reason="collapsing", next_attempt_at=last_push + window)
    if presence.is_online(user.pk):  # Zulip's rule: a live client shows it; checked right before sending
        return _finish(notification, State.SKIPPED, reason="online")

    count = 1
    if key:
        same_key.filter(pk__lt=notification.pk).filter(_open_rows()).exclude(push_state=State.SENDING).update(
            push_state=State.SKIPPED, push_reason=f"collapsed into #{notification.pk}", push_next_attempt_at=None
        )
        # "N new messages": unread rows of this key from the last day (chat marks them read as the user reads).
        recent = notification.created_at - dt.timedelta(days=1)
        count = max(1, same_key.filter(read_at__isnull=True, created_at__gte=recent).count())
    delivered_before = set(
        PushDelivery.objects.filter(notification=notification, state=PushDelivery.State.DELIVERED)
        .values_list("device_id", flat=True)
    )
    prefer_fid = settings.PUSH["PREFER_INSTALLATION_ID"]
    targets = [
        target for device in push_targets_of(user.pk) if device.pk not in delivered_before
        if (target := push.target_for(device, prefer_installation_id=prefer_fid)) is not None
    ]
    if not targets:
        if delivered_before:
            return _finish(notification, State.SENT)
        return _finish(notification, State.SKIPPED, reason="no_devices")
    content = _content(notification, prefs, count=count, badge=selectors.unread_count_of(user.pk))
    backend = push.get_backend()
    results = backend.send(content, targets)
    note = "logged only: no FCM_CREDENTIALS" if backend.name == "logging" else ""
    return _record(notification, results, delivered_before=bool(delivered_before), now=now, note=note)


def _content(notification: Notification, prefs: NotificationPreferences, *, count: int, badge: int) -> push.PushContent:
    """Ids only unless the user opted in to previews: no names, amounts or message text on a lock screen."""
    if prefs.show_previews:
        title = notification.title if count == 1 else f"{notification.title} ({count})"
        body = notification.body
    else:
        title = GENERIC_TITLES.get(notification.kind, "圈子 Quanzi")
        if count > 1 and notification.kind == Notification.Kind.MESSAGE:
            title = f"{count} 条新消息 {count} new messages"
        body = ""
    data = {"notification_id": encode_id("Notification", notification.pk), "kind": notification.kind,
            "event": notification.event}
    if notification.conversation_id is not None:
        data["conversation_id"] = str(notification.conversation_id)
    if count > 1:
        data["count"] = str(count)
    for name, value in (notification.payload or {}).items():
        # Only ids travel: FCM data is visible to the OS and to anything that logs intents.
        if _is_id_key(name) and isinstance(value, str | int) and not isinstance(value, bool):
            data[f"payload_{name}"] = str(value)[:200]
    return push.PushContent(
        title=title, body=body, data=data, collapse_key=notification.collapse_key, channel=notification.kind,
        high_priority=notification.kind in HIGH_PRIORITY_KINDS, badge=badge, count=count,
    )


def _is_id_key(name: str) -> bool:
    """Payload keys that may travel in a push: ids and sequence numbers, never amounts or text."""
    return name in {"id", "seq"} or name.endswith(("_id", "_seq"))


def _record(
    notification: Notification, results: list[push.DeviceResult], *, delivered_before: bool, now: dt.datetime,
    note: str = "",
) -> PushResult:
    outcome_to_state = {
        push.Outcome.DELIVERED: PushDelivery.State.DELIVERED, push.Outcome.RETRY: PushDelivery.State.RETRY,
        push.Outcome.DEACTIVATE: PushDelivery.State.DEACTIVATED, push.Outcome.FAILED: PushDelivery.State.FAILED,
    }
    attempts = notification.push_attempts + 1
    with transaction.atomic():
        for result in results:
            delivery, created = PushDelivery.objects.get_or_create(
                notification=notification, device_id=result.target.device_id,
                defaults={"target": result.target.kind, "state": outcome_to_state[result.outcome],
                          "error": result.reason[:200], "message_id": result.message_id[:200], "updated_at": now},
            )
            if not created:
                PushDelivery.objects.filter(pk=delivery.pk).update(
                    target=result.target.kind, state=outcome_to_state[result.outcome], error=result.reason[:200],
                    message_id=result.message_id[:200], attempts=F("attempts") + 1, updated_at=now,
                )
            if result.outcome == push.Outcome.DEACTIVATE:
                _disable_push_target(result.target, reason=result.reason)
        delivered = delivered_before or any(r.outcome == push.Outcome.DELIVERED for r in results)
        pushed_at = notification.pushed_at or (now if delivered else None)
        retries = [r for r in results if r.outcome == push.Outcome.RETRY]
        failures = [r for r in results if r.outcome == push.Outcome.FAILED]
        summary = "; ".join(f"device {r.target.device_id}: {r.reason}" for r in retries + failures)
        if retries and attempts < settings.PUSH["MAX_ATTEMPTS"]:
            wait = max([_backoff(attempts)] + [dt.timedelta(seconds=r.retry_after) for r in retries if r.retry_after])
            return _finish(notification, State.FAILED, reason=summary, next_attempt_at=now + wait, attempts=1,
                           pushed_at=pushed_at)
        if delivered:
            reason = f"partly: {summary}" if summary else note
            return _finish(notification, State.SENT, reason=reason, attempts=1, pushed_at=pushed_at)
        if retries:
            return _finish(notification, State.DEAD, reason=f"gave up after {attempts} attempts: {summary}", attempts=1)
        if failures:
            return _finish(notification, State.FAILED, reason=summary, attempts=1)
        return _finish(notification, State.SKIPPED, reason="no_devices: push targets unregistered", attempts=1)


def _finish(
    notification: Notification, state: str, *, reason: str = "", next_attempt_at: dt.datetime | None = None,
    attempts: int = 0, pushed_at: dt.datetime | None = None,
) -> PushResult:
    """Release the claim with the row's new state (only the claimant gets here)."""
    fields = {"push_state": state, "push_reason": reason[:200], "push_next_attempt_at": next_attempt_at,
              "push_claimed_at": None, "push_attempts": F("push_attempts") + attempts}
    if pushed_at is not None:
        fields["pushed_at"] = pushed_at
    Notification.objects.filter(pk=notification.pk, push_state=State.SENDING).update(**fields)
    return PushResult(state, reason[:200], next_attempt_at)


def _backoff(attempt: int) -> dt.timedelta:
    base, cap = settings.PUSH["RETRY_BASE_SECONDS"], settings.PUSH["RETRY_MAX_SECONDS"]
    seconds = min(cap, base * 2 ** max(0, attempt - 1))
    return dt.timedelta(seconds=seconds * (1 + random.random() / 10))  # jitter spreads a thundering herd


def _disable_push_target(target: push.PushTarget, *, reason: str) -> None:
    if disable_push_target(device_id=target.device_id, kind=target.kind, value=target.value):
        log.info("push disabled on device %s (%s: %s)", target.device_id, target.kind, reason)


def sweep_pending_pushes(*, limit: int | None = None) -> dict[str, int]:
    """Deliver every row that is due: never enqueued (process died after commit), retry due, deferral over.

    Idempotent: each row is claimed before sending, so running it twice, or next to the after-commit task,
    pushes nothing twice.
    """
    now = clock.now()
    grace = dt.timedelta(seconds=settings.PUSH["SWEEP_GRACE_SECONDS"])
    limit = limit or settings.PUSH["SWEEP_BATCH"]
    due = (
        Notification.objects.filter(_claimable(now))
        .exclude(push_state=State.PENDING, push_next_attempt_at__isnull=True, created_at__gt=now - grace)
        .order_by("id")
        .values_list("pk", flat=True)[:limit]
    )
    counts: dict[str, int] = {}
    for pk in list(due):
        try:
            state = deliver_push(notification_id=pk).state
        except Exception:
            state = "error"
        counts[state] = counts.get(state, 0) + 1
    return counts


def retry_push(*, notification_id: int) -> bool:
    """Operations: send a failed or dead push again (admin action). Returns whether it was re-queued."""
    with transaction.atomic():
        changed = Notification.objects.filter(
            pk=notification_id, push_state__in=[State.FAILED, State.DEAD]
        ).update(push_state=State.PENDING, push_next_attempt_at=clock.now(), push_reason="retried by operations")
        if changed:
            _push_on_commit(notification_id)
    return bool(changed)
