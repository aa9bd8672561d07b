"""Opening conversations and managing who is in them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import transaction

from backend.core import reach
from backend.core.errors import Conflict, NotFound, ValidationFailed

from .. import limits
from ..models import Conversation, Membership
from ._base import (
    Kind,
    ManagedByCircle,
    NotAllowed,
    NotSupportedForKind,
    Role,
    _clean_title,
    _get_or_create_keyed,
    _join,
    _lock_for,
    _names,
    _pair_key,
    _system,
    _unseat,
    _users,
)

# --- conversations ---------------------------------------------------------------------------------


def open_direct_conversation(*, user: Any, other_user_id: int) -> Conversation:
    """The 1:1 conversation of two users, created once per pair."""
    if other_user_id == user.pk:
        raise ValidationFailed("You cannot chat with yourself.", code="INVALID_MEMBER", field="userId")
    (other,) = _users([other_user_id], field="userId")
    _check_reach(user.pk, [other.pk], field="userId")

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
    _check_reach(owner.pk, [m.pk for m in members], field="memberIds")
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


def _check_reach(user_id: int, other_ids: Sequence[int], *, field: str) -> None:
    """Someone the user may not contact (core.reach: not a friend, blocked, ...) is NOT_FOUND, exactly like a
    user who does not exist, so nobody can probe who is there."""
    if not all(reach.may_contact(user_id, other_id) for other_id in other_ids):
        raise NotFound(field=field)


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
        if actor is not None:
            _check_reach(actor.pk, [u.pk for u in new], field="userIds")
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
