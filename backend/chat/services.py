"""Every write of the chat app: one function per use case, each in one transaction.

The socket consumer, GraphQL and other apps (circles, wallet, advisors) all call these, so the rules — who
may do what, sequence numbers, idempotency, push to idle members — live in one place.

Callers pass `actor=None` only from trusted server code (e.g. the circles app managing a circle chat).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from backend.core import clock, presence, ratelimit
from backend.core import text as text_rules
from backend.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from backend.core.values import is_int
from backend.notifications import services as notification_services
from backend.notifications.services import notify

from . import events, limits, selectors
from .models import Conversation, Membership, Message, MessageRevision

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
    return list(
        Membership.objects.filter(conversation=conversation, left_at__isnull=True).values_list("user_id", "muted")
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


def _system(conversation: Conversation, *, actor_id: int | None, event: str, text: str, **details: Any) -> Message:
    system = {"event": event, "actor_id": events.user_gid(actor_id)}
    for key, value in details.items():
        if key.endswith("_ids"):
            value = [events.user_gid(v) for v in value]
        elif key.endswith("_id"):
            value = events.user_gid(value)
        system[key] = value
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
        seat.visible_from_seq, seat.last_read_seq, seat.muted = first_visible, conversation.last_seq, False
        seat.save()
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


# --- conversations ---------------------------------------------------------------------------------


def open_direct_conversation(*, user: Any, other_user_id: int) -> Conversation:
    """The 1:1 conversation of two users, created once per pair."""
    if other_user_id == user.pk:
        raise ValidationFailed("You cannot chat with yourself.", code="INVALID_MEMBER", field="userId")
    (other,) = _users([other_user_id], field="userId")

    def create() -> Conversation:
        conversation = Conversation.objects.create(kind=Kind.DIRECT, key=_pair_key("direct", user.pk, other.pk))
        _join(conversation, user.pk)
        _join(conversation, other.pk)
        conversation.save(update_fields=["member_count"])
        return conversation

    return _get_or_create_keyed(_pair_key("direct", user.pk, other.pk), create)


def create_group(*, owner: Any, title: str, member_ids: Sequence[int]) -> Conversation:
    """A group chat with the caller as owner. Everyone in it sees the history from its creation on."""
    title = _clean_title(title)
    members = [u for u in _users(member_ids, field="memberIds") if u.pk != owner.pk]
    if 1 + len(members) > limits.get("GROUP_MAX_MEMBERS"):
        raise Conflict(f"A group has at most {limits.get('GROUP_MAX_MEMBERS')} members.", code="GROUP_FULL",
                       field="memberIds")
    with transaction.atomic():
        conversation = Conversation.objects.create(kind=Kind.GROUP, title=title, owner=owner)
        _join(conversation, owner.pk, role=Role.OWNER)
        for member in members:
            _join(conversation, member.pk)
        _system(conversation, actor_id=owner.pk, event="group_created", text=f"{owner.display_name} created the group",
                title=title, user_ids=[m.pk for m in members])
    return conversation


def create_circle_conversation(*, circle_id: int, title: str, owner_id: int,
                               member_ids: Sequence[int] = ()) -> Conversation:
    """Called by the circles app: the chat of a circle, once per circle. Membership follows the circle."""
    title = _clean_title(title)

    def create() -> Conversation:
        conversation = Conversation.objects.create(kind=Kind.CIRCLE, title=title, owner_id=owner_id,
                                                   key=f"circle:{circle_id}")
        _join(conversation, owner_id, role=Role.OWNER)
        for uid in dict.fromkeys(member_ids):
            if uid != owner_id:
                _join(conversation, uid)
        _system(conversation, actor_id=None, event="circle_chat_created", text=f"{title}", title=title)
        return conversation

    return _get_or_create_keyed(f"circle:{circle_id}", create)


def open_advisor_conversation(*, customer_id: int, manager_id: int) -> Conversation:
    """A customer's conversation with their client manager (bank staff), once per pair."""
    customer, manager = _users([customer_id, manager_id], field="managerId")
    if not manager.is_client_manager:
        raise ValidationFailed("That user is not a client manager.", code="NOT_A_CLIENT_MANAGER", field="managerId")
    key = _pair_key("advisor", customer.pk, manager.pk, ordered=True)

    def create() -> Conversation:
        conversation = Conversation.objects.create(kind=Kind.ADVISOR, key=key, owner=manager,
                                                   title=manager.display_name[:64])
        _join(conversation, manager.pk, role=Role.ADMIN)
        _join(conversation, customer.pk)
        conversation.save(update_fields=["member_count"])
        return conversation

    return _get_or_create_keyed(key, create)


def open_service_conversation(*, service_account_id: int, subscriber_id: int, title: str) -> Conversation:
    """A service account's one-way channel to one subscriber (notices and cards; the subscriber reads)."""
    title = _clean_title(title)
    service, subscriber = _users([service_account_id, subscriber_id], field="subscriberId")
    key = _pair_key("service", service.pk, subscriber.pk, ordered=True)

    def create() -> Conversation:
        conversation = Conversation.objects.create(kind=Kind.SERVICE, key=key, owner=service, title=title)
        _join(conversation, service.pk, role=Role.OWNER)
        _join(conversation, subscriber.pk)
        conversation.save(update_fields=["member_count"])
        return conversation

    return _get_or_create_keyed(key, create)


def _check_manage(conversation: Conversation, actor: Any | None) -> None:
    if actor is None:
        return
    if conversation.kind == Kind.CIRCLE:
        raise ManagedByCircle()
    if conversation.kind != Kind.GROUP:
        raise NotSupportedForKind()


def add_members(*, conversation_id: int, actor: Any | None, user_ids: Sequence[int]) -> Conversation:
    """Any member of a group may add people; circle chats only through the circles app (actor=None)."""
    with transaction.atomic():
        conversation, _ = _lock_for(conversation_id, actor)
        _check_manage(conversation, actor)
        users = _users(user_ids, field="userIds")
        active = set(Membership.objects.filter(conversation=conversation, left_at__isnull=True)
                     .values_list("user_id", flat=True))
        new = [u for u in users if u.pk not in active]
        if not new:
            return conversation
        if conversation.kind == Kind.GROUP and len(active) + len(new) > limits.get("GROUP_MAX_MEMBERS"):
            raise Conflict(f"A group has at most {limits.get('GROUP_MAX_MEMBERS')} members.", code="GROUP_FULL",
                           field="userIds")
        for user in new:
            _join(conversation, user.pk)
        actor_name = actor.display_name if actor is not None else ""
        text = f"{actor_name} added {_names([u.pk for u in new])}".strip()
        _system(conversation, actor_id=actor.pk if actor else None, event="members_added", text=text,
                user_ids=[u.pk for u in new])
    return conversation


def remove_member(*, conversation_id: int, actor: Any | None, user_id: int) -> Conversation:
    """Owner removes anyone else, admins remove plain members. The removed user stops receiving at once."""
    with transaction.atomic():
        conversation, actor_seat = _lock_for(conversation_id, actor)
        _check_manage(conversation, actor)
        if actor is not None and user_id == actor.pk:
            raise ValidationFailed("Use leave to leave a conversation.", code="INVALID_MEMBER", field="userId")
        seat = Membership.objects.filter(conversation=conversation, user_id=user_id, left_at__isnull=True).first()
        if seat is None:
            raise NotFound(field="userId")
        if actor_seat is not None:
            allowed = actor_seat.role == Role.OWNER or (actor_seat.role == Role.ADMIN and seat.role == Role.MEMBER)
            if not allowed:
                raise NotAllowed()
        _unseat(conversation, seat, removed_by=actor.pk if actor else None, reason="removed")
        actor_name = actor.display_name if actor is not None else ""
        _system(conversation, actor_id=actor.pk if actor else None, event="member_removed",
                text=f"{actor_name} removed {_names([user_id])}".strip(), user_id=user_id)
    return conversation


def leave_conversation(*, conversation_id: int, user: Any) -> None:
    """Leave a group. An owner who leaves hands the group to the longest-serving admin, else member."""
    with transaction.atomic():
        conversation, seat = _lock_for(conversation_id, user)
        _check_manage(conversation, user)
        _unseat(conversation, seat, removed_by=None, reason="left")
        details: dict[str, Any] = {}
        if seat.role == Role.OWNER:
            heir = (Membership.objects.filter(conversation=conversation, left_at__isnull=True)
                    .order_by("role", "joined_at", "id").first())  # "admin" sorts before "member"
            if heir is not None:
                heir.role = Role.OWNER
                heir.save(update_fields=["role"])
                conversation.owner_id = heir.user_id
                conversation.save(update_fields=["owner"])
                details["new_owner_id"] = heir.user_id
        _system(conversation, actor_id=user.pk, event="member_left", text=f"{user.display_name} left", **details)


def rename_conversation(*, conversation_id: int, actor: Any | None, title: str) -> Conversation:
    with transaction.atomic():
        conversation, seat = _lock_for(conversation_id, actor)
        _check_manage(conversation, actor)
        if seat is not None and seat.role not in (Role.OWNER, Role.ADMIN):
            raise NotAllowed()
        title = _clean_title(title)
        if title == conversation.title:
            return conversation
        conversation.title = title
        conversation.save(update_fields=["title"])
        actor_name = actor.display_name if actor is not None else ""
        _system(conversation, actor_id=actor.pk if actor else None, event="renamed",
                text=f"{actor_name} renamed the group to “{title}”".strip(), title=title)
    return conversation


def set_member_role(*, conversation_id: int, actor: Any, user_id: int, role: str) -> Conversation:
    """The owner makes members admins (or back), or hands ownership over (becoming an admin)."""
    if role not in Role.values:
        raise ValidationFailed("Unknown role.", code="INVALID_ROLE", field="role")
    with transaction.atomic():
        conversation, seat = _lock_for(conversation_id, actor)
        _check_manage(conversation, actor)
        if seat.role != Role.OWNER:
            raise NotAllowed()
        target = Membership.objects.filter(conversation=conversation, user_id=user_id, left_at__isnull=True).first()
        if target is None:
            raise NotFound(field="userId")
        if target.pk == seat.pk or target.role == role:
            raise ValidationFailed("Nothing to change.", code="INVALID_MEMBER", field="userId")
        target.role = role
        target.save(update_fields=["role"])
        if role == Role.OWNER:
            seat.role = Role.ADMIN
            seat.save(update_fields=["role"])
            conversation.owner_id = user_id
            conversation.save(update_fields=["owner"])
        _system(conversation, actor_id=actor.pk, event="role_changed",
                text=f"{actor.display_name} made {_names([user_id])} {role}", user_id=user_id, role=role)
    return conversation


def set_muted(*, conversation_id: int, user: Any, muted: bool) -> Membership:
    """Muted conversations send no push; the socket still gets every message."""
    with transaction.atomic():
        seat = Membership.objects.select_for_update().filter(
            conversation_id=conversation_id, user=user, left_at__isnull=True).first()
        if seat is None:
            raise NotFound(field="conversationId")
        seat.muted = bool(muted)
        seat.save(update_fields=["muted"])
        # The push policy also honours it for notifications other apps post about this conversation.
        notification_services.set_conversation_muted(user_id=user.pk, conversation_id=conversation_id, muted=seat.muted)
    return seat


def mark_read(*, conversation_id: int, user: Any, seq: object) -> Membership:
    """Move the read marker forward (never back). Receipts go to the reader's other devices, and to the
    other members in conversations small enough for receipts to make sense."""
    if not is_int(seq, minimum=0):
        raise ValidationFailed("seq must be a non-negative integer.", code="INVALID_SEQ", field="seq")
    with transaction.atomic():
        seat = (Membership.objects.select_for_update().select_related("conversation")
                .filter(conversation_id=conversation_id, user=user, left_at__isnull=True).first())
        if seat is None:
            raise NotFound(field="conversationId")
        conversation = seat.conversation
        seq = min(seq, conversation.last_seq)
        if seq <= seat.last_read_seq:
            return seat
        seat.last_read_seq = seq
        seat.save(update_fields=["last_read_seq"])
        if seq >= conversation.last_seq:  # all caught up: its notifications stop counting and pushing
            notification_services.mark_conversation_read(recipient_id=user.pk, conversation_id=conversation.pk)
        audience = [user.pk]
        if conversation.member_count <= limits.get("READ_RECEIPT_MAX_MEMBERS"):
            audience = [uid for uid, _ in _active_members(conversation)]
        frame = {"type": "read", "conversation_id": events.conversation_gid(conversation.pk),
                 "user_id": events.user_gid(user.pk), "seq": seq}
        events.ring_members_on_commit(conversation.pk, conversation.kind, audience,
                                      events.relay_event(conversation.pk, frame))
    return seat


def relay_typing(*, conversation_id: int, user: Any) -> None:
    """Tell the other members someone is typing. Rate-limited, never stored, skipped in big conversations."""
    ratelimit.hit("chat-typing", f"{user.pk}:{conversation_id}", limit=limits.get("TYPING_LIMIT"),
                  window_seconds=limits.get("TYPING_WINDOW_SECONDS"))
    seat = Membership.objects.select_related("conversation").filter(
        conversation_id=conversation_id, user=user, left_at__isnull=True).first()
    if seat is None:
        raise NotFound(field="conversationId")
    conversation = seat.conversation
    if conversation.member_count > limits.get("TYPING_MAX_MEMBERS"):
        return
    others = [uid for uid, _ in _active_members(conversation) if uid != user.pk]
    frame = {"type": "typing", "conversation_id": events.conversation_gid(conversation.pk),
             "user_id": events.user_gid(user.pk)}
    events.ring_members_now(conversation.pk, conversation.kind, others, events.relay_event(conversation.pk, frame))


# --- messages ----------------------------------------------------------------------------------------


def _clean_client_msg_id(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > limits.get("CLIENT_MSG_ID_MAX_CHARS") \
            or not value.isprintable():
        raise ValidationFailed(
            f"clientMsgId is required: 1 to {limits.get('CLIENT_MSG_ID_MAX_CHARS')} printable characters.",
            code="INVALID_CLIENT_MSG_ID", field="clientMsgId",
        )
    return value


def _clean_text(text: object, *, required: bool) -> str:
    if text is None:
        text = ""
    if not isinstance(text, str) or not text_rules.is_storable(text):
        raise ValidationFailed("text must be a string without NUL characters.", code="INVALID_TEXT", field="text")
    if len(text) > limits.get("TEXT_MAX_CHARS"):
        raise ValidationFailed(f"A message has at most {limits.get('TEXT_MAX_CHARS')} characters.",
                               code="MESSAGE_TOO_LONG", field="text")
    if required and text_rules.is_blank(text):
        raise ValidationFailed("The message is empty.", code="EMPTY_MESSAGE", field="text")
    return text


# GraphQL's Int is 32-bit: a larger size/width/duration would make every later read of the message fail.
ATTACHMENT_MAX_INT = 2**31 - 1
_ATTACHMENT_FIELDS = {"url": str, "name": str, "size": int, "mime_type": str, "width": int, "height": int,
                      "duration_ms": int}


def _clean_attachment(kind: str, attachment: object) -> dict:
    if not isinstance(attachment, dict):
        raise ValidationFailed("An image or file needs an attachment.", code="INVALID_ATTACHMENT", field="attachment")
    clean: dict[str, Any] = {}
    for key, value in attachment.items():
        expected = _ATTACHMENT_FIELDS.get(key)
        if value is None:
            continue
        if expected is None or not isinstance(value, expected) or isinstance(value, bool):
            raise ValidationFailed(f"Bad attachment field {str(key)[:30]!r}.", code="INVALID_ATTACHMENT",
                                   field=f"attachment.{str(key)[:30]}")
        if expected is int and not 0 <= value <= ATTACHMENT_MAX_INT \
                or expected is str and (len(value) > 1000 or not text_rules.is_storable(value)):
            raise ValidationFailed(f"Bad attachment field {key!r}.", code="INVALID_ATTACHMENT",
                                   field=f"attachment.{key}")
        clean[key] = value
    url = urlparse(clean.get("url", ""))
    if url.scheme != "https" or not url.netloc:
        raise ValidationFailed("Attachments are https URLs.", code="INVALID_ATTACHMENT", field="attachment.url")
    if kind == Message.Kind.FILE and not clean.get("name"):
        raise ValidationFailed("A file needs a name.", code="INVALID_ATTACHMENT", field="attachment.name")
    return clean


def _original(sender_id: int, client_msg_id: str, conversation_id: int) -> Message | None:
    original = Message.objects.filter(sender_id=sender_id, client_msg_id=client_msg_id).first()
    if original is not None and original.conversation_id != conversation_id:
        raise Conflict("This clientMsgId was used for another conversation.", code="CLIENT_MSG_ID_REUSED",
                       field="clientMsgId")
    return original


def _push_idle_members(conversation: Conversation, message: Message, members: list[tuple[int, bool]],
                       *, sender_name: str, preview: str) -> None:
    """Members with no live socket (on any node) who did not mute the conversation get a notification row."""
    candidates = [uid for uid, muted in members if uid != message.sender_id and not muted]
    if not candidates:
        return
    idle = set(candidates) - presence.online_among(candidates)
    title = conversation.title or sender_name
    payload = {"conversation_id": events.conversation_gid(conversation.pk), "seq": message.seq}
    for uid in candidates:
        if uid in idle:
            notify(recipient_id=uid, kind="message", event="chat.message", title=title, body=preview,
                   payload=payload, conversation_id=conversation.pk, collapse_key=f"conv-{conversation.pk}")


def preview_of(message: Message) -> str:
    if message.is_recalled:
        return ""
    data = events.message_data(message)
    if message.kind == Message.Kind.IMAGE:
        return "[Image]"
    if message.kind == Message.Kind.FILE:
        return f"[File] {data.get('attachment', {}).get('name', '')}".strip()
    if message.kind == Message.Kind.CARD:
        return str(data.get("card", {}).get("title") or "[Card]")[: limits.get("PREVIEW_CHARS")]
    return message.body[: limits.get("PREVIEW_CHARS")]


def _send(*, conversation_id: int, sender: Any, client_msg_id: str, kind: str, body: str, data: dict | None,
          card_kind: str = "", reply_to_seq: int | None = None, mentions: Sequence[int] = (),
          check_sender: bool = True) -> SendResult:
    original = _original(sender.pk, client_msg_id, conversation_id)
    if original is not None:
        _seat(original.conversation, sender.pk)  # a resend after removal learns nothing
        return SendResult(original, created=False)
    ratelimit.hit("chat-send", str(sender.pk), limit=limits.get("SEND_LIMIT"),
                  window_seconds=limits.get("SEND_WINDOW_SECONDS"))
    try:
        with transaction.atomic():
            conversation, seat = _lock_for(conversation_id, sender)
            original = _original(sender.pk, client_msg_id, conversation_id)  # a concurrent resend won the lock
            if original is not None:
                return SendResult(original, created=False)
            if check_sender and conversation.kind == Kind.SERVICE and seat.role == Role.MEMBER:
                raise ReadOnlyConversation()
            members = _active_members(conversation)
            if reply_to_seq is not None and not (seat.visible_from_seq <= reply_to_seq <= conversation.last_seq):
                raise ValidationFailed("You can only reply to a message in this conversation.",
                                       code="INVALID_REPLY", field="replyToSeq")
            if mentions and not set(mentions) <= {uid for uid, _ in members}:
                raise ValidationFailed("Only members can be mentioned.", code="INVALID_MENTIONS", field="mentions")
            message = _append(conversation, sender_id=sender.pk, kind=kind, body=body, data=data,
                              client_msg_id=client_msg_id, card_kind=card_kind, reply_to_seq=reply_to_seq,
                              mentions=mentions, members=members)
            Membership.objects.filter(pk=seat.pk, last_read_seq__lt=message.seq).update(last_read_seq=message.seq)
            _push_idle_members(conversation, message, members, sender_name=sender.display_name,
                               preview=preview_of(message))
            return SendResult(message, created=True)
    except IntegrityError:
        # A concurrent send with the same client message id committed first (into another conversation,
        # or on a database without row locks).
        original = _original(sender.pk, client_msg_id, conversation_id)
        if original is None:
            raise
        return SendResult(original, created=False)


def send_message(
    *,
    conversation_id: int,
    sender: Any,
    client_msg_id: object,
    text: object = "",
    attachment: object = None,
    kind: object = Message.Kind.TEXT,
    reply_to_seq: object = None,
    mention_ids: object = (),
) -> SendResult:
    """Send text, an image or a file (by URL). Resending with the same client message id returns the
    original instead of a second message."""
    client_msg_id = _clean_client_msg_id(client_msg_id)
    if kind not in (Message.Kind.TEXT, Message.Kind.IMAGE, Message.Kind.FILE):
        raise ValidationFailed("Clients send text, image or file messages.", code="INVALID_KIND", field="kind")
    data = None
    if kind == Message.Kind.TEXT:
        text = _clean_text(text, required=True)
        if attachment is not None:
            raise ValidationFailed("A text message has no attachment.", code="INVALID_ATTACHMENT", field="attachment")
    else:
        text = _clean_text(text, required=False)  # an optional caption
        data = {"attachment": _clean_attachment(kind, attachment)}
    if reply_to_seq is not None and not is_int(reply_to_seq):
        raise ValidationFailed("replyToSeq must be an integer.", code="INVALID_REPLY", field="replyToSeq")
    if not isinstance(mention_ids, list | tuple) or len(mention_ids) > limits.get("MENTIONS_MAX") or not all(
            is_int(m) for m in mention_ids):
        raise ValidationFailed("mentions must be a short list of member ids.", code="INVALID_MENTIONS",
                               field="mentions")
    return _send(conversation_id=conversation_id, sender=sender, client_msg_id=client_msg_id, kind=kind,
                 body=text, data=data, reply_to_seq=reply_to_seq, mentions=list(dict.fromkeys(mention_ids)))


def post_card(*, conversation_id: int, sender: Any, client_msg_id: str, card: dict) -> SendResult:
    """Server-side only (wallet, loans, advisors…): a structured card with a `kind` and the ids a client
    needs (e.g. {"kind": "transfer", "transfer_id": "…", "title": "…"}). Clients cannot post cards, and
    nobody can edit one. Service accounts post their notices here too."""
    client_msg_id = _clean_client_msg_id(client_msg_id)
    if not isinstance(card, dict) or not isinstance(card.get("kind"), str) or not card["kind"]:
        raise ValidationFailed("A card is an object with a string kind.", code="INVALID_CARD", field="card")
    try:
        encoded = json.dumps(card, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed("A card must be JSON.", code="INVALID_CARD", field="card") from exc
    if len(encoded.encode()) > limits.get("CARD_MAX_BYTES") or len(card["kind"]) > 40:
        raise ValidationFailed("The card is too large.", code="INVALID_CARD", field="card")
    return _send(conversation_id=conversation_id, sender=sender, client_msg_id=client_msg_id,
                 kind=Message.Kind.CARD, body="", data={"card": card}, card_kind=card["kind"], check_sender=False)


def _own_message_locked(message_id: object, user: Any) -> tuple[Message, Conversation]:
    """Lock the conversation, then the caller's view of the message. Others' messages: NOT_ALLOWED; messages
    in conversations the caller is not in (or before they joined): NOT_FOUND."""
    if not isinstance(message_id, int):
        raise NotFound(field="messageId")
    conversation_id = Message.objects.filter(pk=message_id).values_list("conversation_id", flat=True).first()
    if conversation_id is None:
        raise NotFound(field="messageId")
    conversation = _lock_conversation(conversation_id)
    seat = Membership.objects.filter(conversation=conversation, user=user, left_at__isnull=True).first()
    message = Message.objects.filter(pk=message_id).first()
    if seat is None or message is None or message.seq < seat.visible_from_seq:
        raise NotFound(field="messageId")
    if message.sender_id != user.pk or message.kind == Message.Kind.SYSTEM:
        raise NotAllowed("Only the sender can change a message.", field="messageId")
    if message.is_recalled:
        raise Conflict("The message was recalled.", code="MESSAGE_RECALLED", field="messageId")
    return message, conversation


def _announce_change(conversation: Conversation, message: Message) -> None:
    conversation.last_change += 1
    conversation.save(update_fields=["last_change"])
    message.change_no = conversation.last_change
    frame = {"type": "message.updated", "change": conversation.last_change,
             "message": events.render_message(message)}
    events.ring_members_on_commit(conversation.pk, conversation.kind, (uid for uid, _ in _active_members(conversation)),
                                  events.relay_event(conversation.pk, frame))


def edit_message(*, message_id: int, user: Any, text: object) -> Message:
    """The sender may correct a text message within EDIT_SECONDS; earlier versions are kept. Never a card."""
    text = _clean_text(text, required=True)
    with transaction.atomic():
        message, conversation = _own_message_locked(message_id, user)
        if message.kind == Message.Kind.CARD:
            raise Conflict("Cards cannot be edited.", code="CARD_NOT_EDITABLE", field="messageId")
        if message.kind != Message.Kind.TEXT:
            raise Conflict("Only text can be edited.", code="NOT_EDITABLE", field="messageId")
        if clock.now() - message.created_at > dt.timedelta(seconds=limits.get("EDIT_SECONDS")):
            raise Conflict("Messages can only be edited shortly after sending.", code="EDIT_WINDOW_PASSED",
                           field="messageId")
        if text == message.body:
            return message
        MessageRevision.objects.create(message=message, body=message.body)
        message.body, message.edited_at = text, clock.now()
        _announce_change(conversation, message)
        message.save(update_fields=["body", "edited_at", "change_no"])
    return message


def recall_message(*, message_id: int, user: Any) -> Message:
    """The sender takes a message back within RECALL_SECONDS. A tombstone stays (its seq is kept); the
    body, attachment, edit history and notification previews are erased."""
    with transaction.atomic():
        message, conversation = _own_message_locked(message_id, user)
        if message.kind == Message.Kind.CARD:
            raise Conflict("Cards cannot be recalled.", code="CARD_NOT_RECALLABLE", field="messageId")
        if clock.now() - message.created_at > dt.timedelta(seconds=limits.get("RECALL_SECONDS")):
            raise Conflict("Messages can only be recalled shortly after sending.", code="RECALL_WINDOW_PASSED",
                           field="messageId")
        message.body, message.data, message.recalled_at = "", "", clock.now()
        message.revisions.all().delete()
        _scrub_notification_previews(conversation.pk, message.seq)
        _announce_change(conversation, message)
        message.save(update_fields=["body", "data", "recalled_at", "change_no"])
    return message


def _scrub_notification_previews(conversation_id: int, seq: int) -> None:
    """A recalled message leaves no text in anyone's inbox and never goes out as a push."""
    notification_services.retract(conversation_id=conversation_id, event="chat.message", payload_match={"seq": seq})


def announce_presence(*, user_id: int, online: bool) -> None:
    """Tell co-members with a live socket (of small conversations) that this user came online or left."""
    audience = selectors.presence_audience(user_id)
    listening = presence.online_among(audience) if audience else set()
    if not listening:
        return
    seen = presence.last_seen(user_id)
    frame = {"type": "presence", "user_id": events.user_gid(user_id), "online": online,
             "last_seen": dt.datetime.fromtimestamp(seen, dt.UTC).isoformat() if seen else None}
    events.ring_users_now(listening, {"type": "client.event", "frame": frame})
