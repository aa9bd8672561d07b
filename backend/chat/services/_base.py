"""Errors, results and the low-level helpers every chat use case shares (locking, seats, appending)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from backend.core import clock
from backend.core import text as text_rules
from backend.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from backend.notifications import selectors as notification_selectors
from backend.notifications import services as notification_services

from .. import events, limits
from ..models import Conversation, Membership, Message

User = get_user_model()
Kind = Conversation.Kind
Role = Membership.Role


class ReadOnlyConversation(PermissionDenied):
    code = "READ_ONLY_CONVERSATION"
    default_message = "Only the service account posts in this conversation."


class NotAllowed(PermissionDenied):
    code = "NOT_ALLOWED"
    default_message = "Your role in this conversation does not allow that."


class NotSupportedForKind(Conflict):
    code = "NOT_SUPPORTED_FOR_KIND"
    default_message = "This kind of conversation does not support that."


class ManagedByCircle(PermissionDenied):
    code = "MANAGED_BY_CIRCLE"
    default_message = "Membership of a circle chat follows the circle."


class Muted(PermissionDenied):
    code = "MUTED"
    default_message = "An admin muted you in this conversation."


@dataclass(frozen=True)
class SendResult:
    message: Message
    created: bool  # False when the client message id was already used: this is the original


# --- helpers -----------------------------------------------------------------------------------


def _lock_conversation(conversation_id: int) -> Conversation:
    conversation = Conversation.objects.select_for_update().filter(pk=conversation_id).first()
    if conversation is None:
        raise NotFound(field="conversationId")
    return conversation


def _seat(conversation: Conversation, user_id: int) -> Membership:
    """The caller's active seat, or NOT_FOUND: non-members never learn a conversation exists."""
    seat = Membership.objects.filter(conversation=conversation, user_id=user_id, left_at__isnull=True).first()
    if seat is None:
        raise NotFound(field="conversationId")
    return seat


def _lock_for(conversation_id: int, actor: Any | None) -> tuple[Conversation, Membership | None]:
    if not isinstance(conversation_id, int):
        raise NotFound(field="conversationId")
    conversation = _lock_conversation(conversation_id)
    seat = _seat(conversation, actor.pk) if actor is not None else None
    return conversation, seat


def _active_members(conversation: Conversation) -> list[tuple[int, bool]]:
    """(user id, muted) of every active member; the mute comes from its one record, in the same query."""
    return list(
        Membership.objects.filter(conversation=conversation, left_at__isnull=True)
        .annotate(is_muted=notification_selectors.conversation_muted_flag())
        .values_list("user_id", "is_muted")
    )


def _users(user_ids: Iterable[object], *, field: str) -> list:
    ids = list(dict.fromkeys(user_ids))
    if not all(isinstance(i, int) for i in ids):
        raise NotFound(field=field)
    found = {u.pk: u for u in User.objects.filter(pk__in=ids, is_active=True)}
    if len(found) != len(ids):
        raise NotFound(field=field)
    return [found[i] for i in ids]


def _clean_title(title: object) -> str:
    if not isinstance(title, str) or text_rules.is_blank(title) or len(title.strip()) > limits.get("TITLE_MAX_CHARS") \
            or not text_rules.is_clean_line(title):
        raise ValidationFailed(
            f"A title has 1 to {limits.get('TITLE_MAX_CHARS')} characters.", code="INVALID_TITLE", field="title"
        )
    return title.strip()


def _names(user_ids: Sequence[int]) -> str:
    names = dict(User.objects.filter(pk__in=user_ids).values_list("pk", "display_name"))
    return "、".join(names.get(uid, "?") for uid in user_ids)


def _append(
    conversation: Conversation,
    *,
    sender_id: int | None,
    kind: str,
    body: str = "",
    data: dict | None = None,
    client_msg_id: str | None = None,
    card_kind: str = "",
    reply_to_seq: int | None = None,
    mentions: Sequence[int] = (),
    members: list[tuple[int, bool]] | None = None,
) -> Message:
    """Give the next seq to a new message. The caller holds the conversation row lock."""
    now = clock.now()
    conversation.last_seq += 1
    message = Message.objects.create(
        conversation=conversation, seq=conversation.last_seq, sender_id=sender_id, kind=kind, body=body,
        data=json.dumps(data, ensure_ascii=False, separators=(",", ":")) if data else "",
        client_msg_id=client_msg_id, card_kind=card_kind, reply_to_seq=reply_to_seq, mentions=list(mentions),
        created_at=now,
    )
    conversation.last_message = message
    conversation.last_activity_at = now
    conversation.save(update_fields=["last_seq", "last_message", "last_activity_at", "member_count"])
    if members is None:
        members = _active_members(conversation)
    events.ring_members_on_commit(conversation.pk, conversation.kind, (uid for uid, _ in members),
                                  events.new_message_event(message))
    return message


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _system(conversation: Conversation, *, actor_id: int | None, event: str, text: str, **details: Any) -> Message:
    """A system message. Its `system` object is wire-ready: camelCase keys, users named by their global ids
    ({event, actorId, userId?, userIds?, title?, role?}, see docs/websocket-protocol.md)."""
    system = {"event": event, "actorId": events.user_gid(actor_id)}
    for key, value in details.items():
        if key.endswith("_ids"):
            value = [events.user_gid(v) for v in value]
        elif key.endswith("_id"):
            value = events.user_gid(value)
        system[_camel(key)] = value
    return _append(conversation, sender_id=actor_id, kind=Message.Kind.SYSTEM, body=text, data={"system": system})


def _join(conversation: Conversation, user_id: int, *, role: str = Role.MEMBER) -> Membership:
    """Seat a user (again). They see messages from the system message announcing them on."""
    now = clock.now()
    first_visible = conversation.last_seq + 1
    seat, created = Membership.objects.get_or_create(
        conversation=conversation, user_id=user_id,
        defaults={"role": role, "visible_from_seq": first_visible, "last_read_seq": conversation.last_seq,
                  "joined_at": now},
    )
    if not created:
        if seat.left_at is None:
            return seat
        seat.role, seat.left_at, seat.removed_by, seat.joined_at = role, None, None, now
        seat.visible_from_seq, seat.last_read_seq = first_visible, conversation.last_seq
        seat.save()
        # A rejoined member starts unmuted, as a new one does.
        notification_services.set_conversation_muted(user_id=user_id, conversation_id=conversation.pk, muted=False)
    conversation.member_count += 1
    events.ring_users_on_commit(
        [user_id], events.membership_event(conversation.pk, joined=True, seq=first_visible, reason="added",
                                           kind=conversation.kind)
    )
    return seat


def _unseat(conversation: Conversation, seat: Membership, *, removed_by: int | None, reason: str) -> None:
    seat.left_at, seat.removed_by_id = clock.now(), removed_by
    seat.save(update_fields=["left_at", "removed_by"])
    conversation.member_count -= 1
    # The removed user's sockets drop the conversation as soon as this arrives; the next message is computed
    # without them anyway (the row lock orders it after this commit).
    events.ring_users_on_commit(
        [seat.user_id],
        events.membership_event(conversation.pk, joined=False, seq=conversation.last_seq + 1, reason=reason,
                                kind=conversation.kind),
    )


def _pair_key(kind: str, a: int, b: int, *, ordered: bool = False) -> str:
    if not ordered:
        a, b = min(a, b), max(a, b)
    return f"{kind}:{a}:{b}"


def _get_or_create_keyed(key: str, create) -> Conversation:
    existing = Conversation.objects.filter(key=key).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return create()
    except IntegrityError:  # somebody created it concurrently
        return Conversation.objects.get(key=key)
