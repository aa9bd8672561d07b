"""Friends, blocks and contact discovery: consent decides who may find and reach whom."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q

from backend.accounts.models import phone_index
from backend.core import clock, ratelimit
from backend.core.errors import Conflict, NotFound, ValidationFailed
from backend.core.phone import normalize_phone
from backend.core.values import is_int
from backend.notifications.services import notify

from .. import selectors
from ..models import Block, Discoverability, FriendRequest, Friendship, Vouch
from ._base import clean_line, limit, new_code

User = get_user_model()
Status = FriendRequest.Status


def _other_user(user: Any, other_id: object, *, field: str = "userId") -> Any:
    """An active user other than the caller. A blocker is found like anyone (the blocked user already knows
    them); what the block changes is that nothing the blocked user does reaches them."""
    if not is_int(other_id) or other_id == user.pk:
        raise NotFound(field=field)
    other = User.objects.filter(pk=other_id, is_active=True).first()
    if other is None:
        raise NotFound(field=field)
    return other


def send_friend_request(*, user: Any, to_user_id: int, note: str = "") -> FriendRequest:
    """Ask someone to be friends (with a short note). If they already asked me, this accepts theirs.

    To someone who blocked me it answers exactly as to anyone else, and they never see it."""
    note = clean_line(note, field="note", code="INVALID_NOTE", max_chars=100, required=False)
    other = _other_user(user, to_user_id)
    ratelimit.hit("circles-friend-request", str(user.pk), limit=limit("FRIEND_REQUESTS_PER_HOUR"), window_seconds=3600)
    with transaction.atomic():
        if selectors.are_friends(user.pk, other.pk):
            raise Conflict("You are already friends.", code="ALREADY_FRIENDS", field="userId")
        if Block.objects.filter(blocker_id=user.pk, blocked_id=other.pk).exists():
            raise Conflict("Unblock them first.", code="USER_BLOCKED", field="userId")
        theirs = FriendRequest.objects.select_for_update().filter(
            from_user=other, to_user=user, status=Status.PENDING).first()
        if theirs is not None:
            _befriend(theirs)
            return theirs
        existing = FriendRequest.objects.filter(from_user=user, to_user=other, status=Status.PENDING).first()
        if existing is not None:
            return existing  # asking twice changes nothing
        try:
            with transaction.atomic():
                request = FriendRequest.objects.create(from_user=user, to_user=other, note=note)
        except IntegrityError:
            return FriendRequest.objects.get(from_user=user, to_user=other, status=Status.PENDING)
    if not selectors.is_blocked_between(user.pk, other.pk):
        notify(recipient_id=other.pk, kind="circle", event="circles.friend_request",
               title="好友申请 Friend request", body=f"{user.display_name}: {note}".strip(": "))
    return request


def _befriend(request: FriendRequest) -> None:
    request.status, request.decided_at = Status.ACCEPTED, clock.now()
    request.save(update_fields=["status", "decided_at"])
    for a, b in ((request.from_user_id, request.to_user_id), (request.to_user_id, request.from_user_id)):
        Friendship.objects.get_or_create(user_id=a, friend_id=b)


def _incoming(user: Any, request_id: object) -> FriendRequest:
    if not is_int(request_id):
        raise NotFound(field="requestId")
    request = FriendRequest.objects.select_for_update().filter(
        pk=request_id, to_user=user, status=Status.PENDING).first()
    if request is None or selectors.is_blocked_between(user.pk, request.from_user_id):
        raise NotFound(field="requestId")
    return request


def accept_friend_request(*, user: Any, request_id: int) -> FriendRequest:
    with transaction.atomic():
        request = _incoming(user, request_id)
        _befriend(request)
        notify(recipient_id=request.from_user_id, kind="circle", event="circles.friend_accepted",
               title="好友申请已通过 Friend request accepted", body=user.display_name)
    return request


def decline_friend_request(*, user: Any, request_id: int) -> FriendRequest:
    """The requester is not told: their request just never turns into a friendship."""
    with transaction.atomic():
        request = _incoming(user, request_id)
        request.status, request.decided_at = Status.DECLINED, clock.now()
        request.save(update_fields=["status", "decided_at"])
    return request


def remove_friend(*, user: Any, friend_id: int) -> None:
    with transaction.atomic():
        deleted, _ = Friendship.objects.filter(
            Q(user_id=user.pk, friend_id=friend_id) | Q(user_id=friend_id, friend_id=user.pk)).delete()
        if not deleted:
            raise NotFound(field="userId")


def block_user(*, user: Any, other_id: int) -> Block:
    """Block someone: the friendship and pending requests between us end, vouches between us are withdrawn,
    and from now on they cannot message, find, invite or vouch for me. They are not told."""
    if not is_int(other_id) or other_id == user.pk or not User.objects.filter(pk=other_id).exists():
        raise NotFound(field="userId")
    with transaction.atomic():
        block, _ = Block.objects.get_or_create(blocker_id=user.pk, blocked_id=other_id)
        Friendship.objects.filter(Q(user_id=user.pk, friend_id=other_id) | Q(user_id=other_id, friend_id=user.pk)).delete()
        FriendRequest.objects.filter(
            Q(from_user_id=user.pk, to_user_id=other_id) | Q(from_user_id=other_id, to_user_id=user.pk),
            status=Status.PENDING).update(status=Status.CANCELLED, decided_at=clock.now())
        Vouch.objects.filter(Q(voucher_id=other_id, vouchee_id=user.pk) | Q(voucher_id=user.pk, vouchee_id=other_id),
                             withdrawn_at__isnull=True).update(withdrawn_at=clock.now())
    return block


def unblock_user(*, user: Any, other_id: int) -> None:
    deleted, _ = Block.objects.filter(blocker_id=user.pk, blocked_id=other_id).delete()
    if not deleted:
        raise NotFound(field="userId")


# --- discovery -------------------------------------------------------------------------------------------


def discoverability_of(user_id: int) -> Discoverability:
    """The user's settings row (created on first use with a fresh share code, phone discovery off)."""
    row = Discoverability.objects.filter(user_id=user_id).first()
    if row is not None:
        return row
    for _ in range(5):
        try:
            with transaction.atomic():
                return Discoverability.objects.create(user_id=user_id, share_code=new_code(10))
        except IntegrityError:
            row = Discoverability.objects.filter(user_id=user_id).first()
            if row is not None:
                return row
    raise Conflict("Try again.", code="TRY_AGAIN")  # pragma: no cover - five code collisions in a row


def set_discoverability(*, user: Any, by_phone: bool | None = None, new_share_code: bool = False) -> Discoverability:
    row = discoverability_of(user.pk)
    if by_phone is not None:
        row.by_phone = bool(by_phone)
    if new_share_code:  # the old QR stops working (e.g. it was posted somewhere by mistake)
        row.share_code = new_code(10)
    row.updated_at = clock.now()
    row.save()
    return row


def _discoverable_by_phone(viewer: Any, indexes: list[str]) -> list[Any]:
    hidden = selectors.blocked_ids(viewer.pk) | {viewer.pk}
    return list(User.objects.filter(phone_index__in=indexes, is_active=True, discoverability__by_phone=True)
                .exclude(pk__in=hidden).order_by("id"))


def find_by_phone(*, user: Any, phone: str) -> Any:
    """The user with this number if they allow being found by phone; anything else is NOT_FOUND."""
    ratelimit.hit("circles-phone", str(user.pk), limit=limit("PHONE_LOOKUPS_PER_HOUR"), window_seconds=3600)
    found = _discoverable_by_phone(user, [phone_index(normalize_phone(phone))])
    if not found:
        raise NotFound(field="phone")
    return found[0]


def find_by_share_code(*, user: Any, code: object) -> Any:
    if not isinstance(code, str) or not 1 <= len(code) <= 16:
        raise NotFound(field="code")
    row = Discoverability.objects.select_related("user").filter(share_code=code.strip().upper()).first()
    if row is None or not row.user.is_active or row.user_id == user.pk \
            or row.user_id in selectors.blocked_ids(user.pk):
        raise NotFound(field="code")
    return row.user


def match_contacts(*, user: Any, phones: list[object]) -> list[Any]:
    """Which of my contacts are users who allow being found by phone. The numbers are turned into their blind
    index at once and never stored; who declined (or blocked me) is indistinguishable from a non-user."""
    ratelimit.hit("circles-contacts", str(user.pk), limit=limit("CONTACT_MATCH_PER_HOUR"), window_seconds=3600)
    if not isinstance(phones, list | tuple) or len(phones) > limit("CONTACT_MATCH_MAX_PHONES"):
        raise ValidationFailed(f"Upload at most {limit('CONTACT_MATCH_MAX_PHONES')} numbers at a time.",
                               code="TOO_MANY_CONTACTS", field="phones")
    indexes = set()
    for raw in phones:
        try:
            indexes.add(phone_index(normalize_phone(raw)))
        except ValidationFailed:
            continue  # an address-book entry that is not a phone number is simply not matched
    return _discoverable_by_phone(user, sorted(indexes)) if indexes else []
