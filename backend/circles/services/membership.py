"""Circles and their members: creation, the three join policies, invitations, roles, removal, verification.

Every circle has its circle conversation in chat; joining, leaving and removal keep it in step through
chat.services with actor=None (chat refuses circle-chat membership changes from anyone else).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q

from backend.chat import services as chat
from backend.core import clock, reach
from backend.core.crypto import keyring
from backend.core.errors import Conflict, NotFound, ValidationFailed
from backend.core.values import is_int
from backend.notifications.services import notify

from .. import selectors
from ..models import Circle, CircleMember, InviteCode, JoinRequest, VerificationRequest, Vouch
from ._base import (
    ADMINS,
    AlreadyMember,
    NotAllowed,
    Role,
    clean_https_url,
    clean_line,
    clean_text,
    limit,
    lock_circle,
    member_seat,
    new_code,
    refuse_blacklisted,
    require_role,
)

JoinStatus = JoinRequest.Status


def _choice(value: object, choices, *, field: str, code: str) -> str:
    value = getattr(value, "value", value)
    if value not in choices.values:
        raise ValidationFailed(f"Unknown {field}.", code=code, field=field)
    return value


def create_circle(*, owner: Any, kind: str, name: str, description: str = "", avatar_url: str = "",
                  visibility: str = Circle.Visibility.PUBLIC, join_policy: str = Circle.JoinPolicy.OPEN,
                  requires_verification: bool = False, verification_domain: str = "",
                  members_may_message: bool = True) -> Circle:
    """A new circle with the caller as owner and its circle chat. Blacklisted users may not create circles."""
    refuse_blacklisted(owner)
    kind = _choice(kind, Circle.Kind, field="kind", code="INVALID_KIND")
    visibility = _choice(visibility, Circle.Visibility, field="visibility", code="INVALID_VISIBILITY")
    join_policy = _choice(join_policy, Circle.JoinPolicy, field="joinPolicy", code="INVALID_JOIN_POLICY")
    name = clean_line(name, field="name", code="INVALID_NAME", max_chars=64)
    description = clean_text(description, field="description", code="INVALID_DESCRIPTION", max_chars=2000)
    avatar_url = clean_https_url(avatar_url, field="avatarUrl", code="INVALID_AVATAR")
    domain = clean_line(verification_domain, field="verificationDomain", code="INVALID_DOMAIN", max_chars=100,
                        required=False).lower().lstrip("@")
    if domain and ("." not in domain or "@" in domain or " " in domain):
        raise ValidationFailed("A domain such as tsinghua.edu.cn.", code="INVALID_DOMAIN", field="verificationDomain")
    with transaction.atomic():
        circle = Circle.objects.create(
            kind=kind, name=name, description=description, avatar_url=avatar_url, visibility=visibility,
            join_policy=join_policy, requires_verification=bool(requires_verification), verification_domain=domain,
            members_may_message=bool(members_may_message), owner=owner, member_count=1)
        CircleMember.objects.create(circle=circle, user=owner, role=Role.OWNER)
        circle.conversation = chat.create_circle_conversation(circle_id=circle.pk, title=name, owner_id=owner.pk)
        circle.save(update_fields=["conversation"])
    return circle


def update_circle(*, actor: Any, circle_id: int, **changes: Any) -> Circle:
    """Admins change the description, avatar, visibility, join policy or direct-message rule."""
    with transaction.atomic():
        circle = lock_circle(circle_id)
        require_role(member_seat(circle, actor.pk), *ADMINS)
        if changes.get("description") is not None:
            circle.description = clean_text(changes["description"], field="description", code="INVALID_DESCRIPTION",
                                            max_chars=2000)
        if changes.get("avatar_url") is not None:
            circle.avatar_url = clean_https_url(changes["avatar_url"], field="avatarUrl", code="INVALID_AVATAR")
        if changes.get("visibility") is not None:
            circle.visibility = _choice(changes["visibility"], Circle.Visibility, field="visibility",
                                        code="INVALID_VISIBILITY")
        if changes.get("join_policy") is not None:
            circle.join_policy = _choice(changes["join_policy"], Circle.JoinPolicy, field="joinPolicy",
                                         code="INVALID_JOIN_POLICY")
        if changes.get("members_may_message") is not None:
            circle.members_may_message = bool(changes["members_may_message"])
        circle.save()
    return circle


# --- seats ------------------------------------------------------------------------------------------------


def _seat_user(circle: Circle, user_id: int, *, role: str = Role.MEMBER) -> CircleMember:
    """Seat a user (again) and add them to the circle chat. The caller holds the circle lock."""
    now = clock.now()
    seat, created = CircleMember.objects.get_or_create(circle=circle, user_id=user_id,
                                                       defaults={"role": role, "joined_at": now})
    if not created:
        if seat.left_at is None:
            raise AlreadyMember(field="circleId")
        seat.role, seat.joined_at, seat.left_at, seat.removed_by, seat.muted_until = role, now, None, None, None
        seat.save()
    approved = VerificationRequest.objects.filter(circle=circle, user_id=user_id,
                                                  status=VerificationRequest.Status.APPROVED).order_by("-id").first()
    if approved is not None:
        seat.verified_at, seat.verified_by_id, seat.verification_method = (approved.decided_at,
                                                                          approved.decided_by_id, approved.method)
        seat.save(update_fields=["verified_at", "verified_by", "verification_method"])
    Circle.objects.filter(pk=circle.pk).update(member_count=F("member_count") + 1)
    if circle.conversation_id:
        chat.add_members(conversation_id=circle.conversation_id, actor=None, user_ids=[user_id])
    return seat


def _unseat_user(circle: Circle, seat: CircleMember, *, removed_by: int | None) -> None:
    """End a seat: out of the circle chat at once, and vouches by or for them in this circle withdrawn."""
    now = clock.now()
    seat.left_at, seat.removed_by_id = now, removed_by
    seat.save(update_fields=["left_at", "removed_by"])
    Circle.objects.filter(pk=circle.pk).update(member_count=F("member_count") - 1)
    Vouch.objects.filter(Q(voucher_id=seat.user_id) | Q(vouchee_id=seat.user_id), circle=circle,
                         withdrawn_at__isnull=True).update(withdrawn_at=now)
    if circle.conversation_id:
        chat.remove_member(conversation_id=circle.conversation_id, actor=None, user_id=seat.user_id)


def _check_can_join(circle: Circle, user: Any) -> None:
    refuse_blacklisted(user)
    if CircleMember.objects.filter(circle=circle, user=user, left_at__isnull=True).exists():
        raise AlreadyMember(field="circleId")
    if circle.requires_verification and not VerificationRequest.objects.filter(
            circle=circle, user=user, status=VerificationRequest.Status.APPROVED).exists():
        raise Conflict("Verify first (school e-mail or proof).", code="VERIFICATION_REQUIRED", field="circleId")


def _visible_circle_locked(user: Any, circle_id: object) -> Circle:
    """Lock a circle the user may see (public, or one they were invited to); anything else NOT_FOUND."""
    if not is_int(circle_id) or not (selectors.visible_circles(user.pk).filter(pk=circle_id).exists()
                                     or _invited(circle_id, user.pk).exists()):
        raise NotFound(field="circleId")
    return lock_circle(circle_id)


def _invited(circle_id: int, user_id: int):
    return JoinRequest.objects.filter(circle_id=circle_id, user_id=user_id, status=JoinStatus.PENDING,
                                      invited_by__isnull=False)


def join_circle(*, user: Any, circle_id: int, note: str = "") -> CircleMember | JoinRequest:
    """Open circles seat you at once; approval circles file a request for the admins; invite-code circles need
    `join_with_code` (or an invitation, which `accept_invitation` takes)."""
    note = clean_line(note, field="note", code="INVALID_NOTE", max_chars=200, required=False)
    with transaction.atomic():
        circle = _visible_circle_locked(user, circle_id)
        _check_can_join(circle, user)
        if circle.join_policy == Circle.JoinPolicy.OPEN:
            return _seat_user(circle, user.pk)
        if circle.join_policy == Circle.JoinPolicy.INVITE_CODE:
            raise Conflict("This circle is joined with an invite code.", code="INVITE_CODE_REQUIRED", field="circleId")
        if JoinRequest.objects.filter(circle=circle, user=user, status=JoinStatus.PENDING).exists():
            raise Conflict("Your request is waiting for an admin.", code="REQUEST_PENDING", field="circleId")
        request = JoinRequest.objects.create(circle=circle, user=user, note=note)
        for admin_id in CircleMember.objects.filter(circle=circle, left_at__isnull=True, role__in=ADMINS) \
                .values_list("user_id", flat=True):
            notify(recipient_id=admin_id, kind="circle", event="circles.join_request",
                   title="入圈申请 Join request", body=f"{user.display_name} → {circle.name}")
        return request


def join_with_code(*, user: Any, code: object) -> CircleMember:
    """Join with an invite code: valid, unexpired, not used up (every use counted under the code's row lock)."""
    if not isinstance(code, str) or not 1 <= len(code) <= 16:
        raise NotFound("Unknown invite code.", code="INVITE_INVALID", field="code")
    with transaction.atomic():
        invite = InviteCode.objects.select_for_update().select_related("circle").filter(
            code=code.strip().upper(), revoked_at__isnull=True).first()
        if invite is None:
            raise NotFound("Unknown invite code.", code="INVITE_INVALID", field="code")
        if invite.expires_at <= clock.now():
            raise Conflict("This invite code has expired.", code="INVITE_EXPIRED", field="code")
        if invite.uses >= invite.max_uses:
            raise Conflict("This invite code has been used up.", code="INVITE_EXHAUSTED", field="code")
        circle = lock_circle(invite.circle_id, field="code")
        _check_can_join(circle, user)
        seat = _seat_user(circle, user.pk)
        InviteCode.objects.filter(pk=invite.pk).update(uses=F("uses") + 1)
    return seat


def create_invite_code(*, actor: Any, circle_id: int, expires_in_hours: int, max_uses: int) -> InviteCode:
    if not is_int(expires_in_hours, minimum=1) or expires_in_hours > limit("INVITE_MAX_HOURS"):
        raise ValidationFailed(f"1 to {limit('INVITE_MAX_HOURS')} hours.", code="INVALID_EXPIRY", field="expiresInHours")
    if not is_int(max_uses, minimum=1) or max_uses > limit("INVITE_MAX_USES"):
        raise ValidationFailed(f"1 to {limit('INVITE_MAX_USES')} uses.", code="INVALID_MAX_USES", field="maxUses")
    with transaction.atomic():
        circle = lock_circle(circle_id)
        require_role(member_seat(circle, actor.pk), *ADMINS)
        return InviteCode.objects.create(circle=circle, code=new_code(10), created_by=actor, max_uses=max_uses,
                                         expires_at=clock.now() + dt.timedelta(hours=expires_in_hours))


def invite_user(*, actor: Any, circle_id: int, user_id: int) -> JoinRequest:
    """Invite someone I may contact. In open circles any member may invite; otherwise admins. The invitee
    accepts with `accept_invitation` (policy and verification still apply). Someone who blocked me looks
    like nobody (NOT_FOUND)."""
    with transaction.atomic():
        circle = lock_circle(circle_id)
        seat = member_seat(circle, actor.pk)
        if circle.join_policy != Circle.JoinPolicy.OPEN:
            require_role(seat, *ADMINS)
        if not is_int(user_id) or user_id == actor.pk or not reach.may_contact(actor.pk, user_id) \
                or not get_user_model().objects.filter(pk=user_id, is_active=True).exists():
            raise NotFound(field="userId")
        if CircleMember.objects.filter(circle=circle, user_id=user_id, left_at__isnull=True).exists():
            raise AlreadyMember(field="userId")
        existing = _invited(circle.pk, user_id).first()
        if existing is not None:
            return existing
        JoinRequest.objects.filter(circle=circle, user_id=user_id, status=JoinStatus.PENDING).update(
            status=JoinStatus.CANCELLED, decided_at=clock.now())
        invitation = JoinRequest.objects.create(circle=circle, user_id=user_id, invited_by=actor)
        notify(recipient_id=user_id, kind="circle", event="circles.invitation", title="入圈邀请 Invitation",
               body=f"{actor.display_name} → {circle.name}")
    return invitation


def accept_invitation(*, user: Any, request_id: int) -> CircleMember:
    with transaction.atomic():
        invitation = JoinRequest.objects.select_for_update().filter(
            pk=request_id if is_int(request_id) else 0, user=user, status=JoinStatus.PENDING,
            invited_by__isnull=False).first()
        if invitation is None or selectors.is_blocked_between(user.pk, invitation.invited_by_id):
            raise NotFound(field="requestId")
        circle = lock_circle(invitation.circle_id, field="requestId")
        _check_can_join(circle, user)
        invitation.status, invitation.decided_at = JoinStatus.APPROVED, clock.now()
        invitation.save(update_fields=["status", "decided_at"])
        return _seat_user(circle, user.pk)


def decide_join_request(*, actor: Any, request_id: int, approve: bool) -> JoinRequest:
    """An admin approves (the user is seated) or rejects a pending request."""
    with transaction.atomic():
        request = JoinRequest.objects.filter(pk=request_id if is_int(request_id) else 0, invited_by__isnull=True,
                                             status=JoinStatus.PENDING).first()
        if request is None:
            raise NotFound(field="requestId")
        circle = lock_circle(request.circle_id, field="requestId")
        seat = CircleMember.objects.filter(circle=circle, user=actor, left_at__isnull=True).first()
        if seat is None:
            raise NotFound(field="requestId")
        require_role(seat, *ADMINS)
        request = JoinRequest.objects.select_for_update().get(pk=request.pk)
        if request.status != JoinStatus.PENDING:
            raise NotFound(field="requestId")
        if approve:
            _check_can_join(circle, request.user)
            _seat_user(circle, request.user_id)
        request.status = JoinStatus.APPROVED if approve else JoinStatus.REJECTED
        request.decided_by, request.decided_at = actor, clock.now()
        request.save(update_fields=["status", "decided_by", "decided_at"])
        notify(recipient_id=request.user_id, kind="circle", event="circles.join_decided",
               title="入圈申请 Join request", body=f"{circle.name}: {'approved' if approve else 'not approved'}")
    return request


def leave_circle(*, user: Any, circle_id: int) -> None:
    """The owner hands ownership over first (OWNER_MUST_TRANSFER) unless they are the last member."""
    with transaction.atomic():
        circle = lock_circle(circle_id)
        seat = member_seat(circle, user.pk)
        if seat.role == Role.OWNER and CircleMember.objects.filter(circle=circle, left_at__isnull=True) \
                .exclude(pk=seat.pk).exists():
            raise Conflict("Hand ownership to another member first.", code="OWNER_MUST_TRANSFER", field="circleId")
        _unseat_user(circle, seat, removed_by=None)


def _target_seat(circle: Circle, user_id: object) -> CircleMember:
    seat = CircleMember.objects.filter(circle=circle, user_id=user_id if is_int(user_id) else 0,
                                       left_at__isnull=True).first()
    if seat is None:
        raise NotFound(field="userId")
    return seat


def _outranks(actor_seat: CircleMember, target: CircleMember) -> bool:
    return actor_seat.role == Role.OWNER or (actor_seat.role == Role.ADMIN and target.role == Role.MEMBER)


def remove_member(*, actor: Any, circle_id: int, user_id: int) -> None:
    """The owner removes anyone else, admins remove plain members. They stop receiving the chat at once."""
    with transaction.atomic():
        circle = lock_circle(circle_id)
        actor_seat = member_seat(circle, actor.pk)
        require_role(actor_seat, *ADMINS)
        target = _target_seat(circle, user_id)
        if target.pk == actor_seat.pk:
            raise ValidationFailed("Use leave to leave a circle.", code="INVALID_MEMBER", field="userId")
        if not _outranks(actor_seat, target):
            raise NotAllowed()
        _unseat_user(circle, target, removed_by=actor.pk)


def mute_member(*, actor: Any, circle_id: int, user_id: int, hours: int) -> CircleMember:
    """Admins stop a member posting moments to the circle for `hours` (0 lifts the mute)."""
    if not is_int(hours, minimum=0) or hours > 24 * 365:
        raise ValidationFailed("0 to 8760 hours.", code="INVALID_DURATION", field="hours")
    with transaction.atomic():
        circle = lock_circle(circle_id)
        actor_seat = member_seat(circle, actor.pk)
        require_role(actor_seat, *ADMINS)
        target = _target_seat(circle, user_id)
        if target.pk == actor_seat.pk or not _outranks(actor_seat, target):
            raise NotAllowed()
        target.muted_until = clock.now() + dt.timedelta(hours=hours) if hours else None
        target.save(update_fields=["muted_until"])
    return target


def set_member_role(*, actor: Any, circle_id: int, user_id: int, role: str) -> CircleMember:
    """The owner makes members admins (or back), or hands ownership over (becoming an admin)."""
    role = _choice(role, CircleMember.Role, field="role", code="INVALID_ROLE")
    with transaction.atomic():
        circle = lock_circle(circle_id)
        actor_seat = member_seat(circle, actor.pk)
        require_role(actor_seat, Role.OWNER)
        target = _target_seat(circle, user_id)
        if target.pk == actor_seat.pk or target.role == role:
            raise ValidationFailed("Nothing to change.", code="INVALID_MEMBER", field="userId")
        target.role = role
        target.save(update_fields=["role"])
        if role == Role.OWNER:
            refuse_blacklisted(target.user)
            actor_seat.role = Role.ADMIN
            actor_seat.save(update_fields=["role"])
            circle.owner_id = target.user_id
            circle.save(update_fields=["owner"])
        if circle.conversation_id:
            chat.post_system_notice(conversation_id=circle.conversation_id, event="circle_role_changed",
                                    text=f"{target.user.display_name}: {role}", user_id=target.user_id, role=role)
    return target


# --- alumni verification ---------------------------------------------------------------------------------


def _code_hash(code: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), code.encode(), hashlib.sha256).hexdigest()


def _verifiable_circle(user: Any, circle_id: int) -> Circle:
    circle = _visible_circle_locked(user, circle_id)
    if not circle.requires_verification:
        raise Conflict("This circle does not verify members.", code="VERIFICATION_NOT_NEEDED", field="circleId")
    return circle


def start_email_verification(*, user: Any, circle_id: int, email: str) -> VerificationRequest:
    """Send a 6-digit code to a school address of the circle's domain. The address itself is not stored
    (only its blind index, so one address cannot verify many accounts unnoticed)."""
    if not isinstance(email, str) or len(email) > 200 or email.count("@") != 1:
        raise ValidationFailed("Enter an e-mail address.", code="INVALID_EMAIL", field="email")
    email = email.strip().lower()
    with transaction.atomic():
        circle = _verifiable_circle(user, circle_id)
        if not circle.verification_domain or not email.endswith("@" + circle.verification_domain):
            raise ValidationFailed(f"Use an address at {circle.verification_domain or 'the school domain'}.",
                                   code="EMAIL_DOMAIN_MISMATCH", field="email")
        code = f"{secrets.randbelow(10**6):06d}"
        VerificationRequest.objects.filter(circle=circle, user=user, method=VerificationRequest.Method.EMAIL,
                                           status=VerificationRequest.Status.PENDING).update(
            status=VerificationRequest.Status.REJECTED, decided_at=clock.now())
        request = VerificationRequest.objects.create(
            circle=circle, user=user, method=VerificationRequest.Method.EMAIL,
            email_index=keyring().blind_index(email, context="circles.verification.email"),
            code_hash=_code_hash(code), expires_at=clock.now() + dt.timedelta(seconds=limit("EMAIL_CODE_TTL_SECONDS")))
        transaction.on_commit(lambda: send_mail(
            f"{circle.name}: verification code", f"Your Quanzi verification code is {code}.",
            None, [email], fail_silently=True))
    return request


def confirm_email_verification(*, user: Any, circle_id: int, code: str) -> VerificationRequest:
    with transaction.atomic():
        circle = _verifiable_circle(user, circle_id)
        request = VerificationRequest.objects.select_for_update().filter(
            circle=circle, user=user, method=VerificationRequest.Method.EMAIL,
            status=VerificationRequest.Status.PENDING).order_by("-id").first()
        if request is None or request.expires_at <= clock.now() \
                or request.attempts >= limit("EMAIL_CODE_MAX_ATTEMPTS"):
            raise Conflict("Request a new code.", code="CODE_EXPIRED", field="code")
        right = isinstance(code, str) and hmac.compare_digest(_code_hash(code.strip()), request.code_hash)
        if right:
            _approve(request, by=None)
    if not right:  # counted outside the refused transaction so the attempt sticks
        VerificationRequest.objects.filter(pk=request.pk).update(attempts=F("attempts") + 1)
        raise ValidationFailed("Wrong code.", code="CODE_INVALID", field="code")
    return request


def submit_verification_proof(*, user: Any, circle_id: int, proof_url: str) -> VerificationRequest:
    """Uploaded proof (a diploma photo URL) for the circle's admins or staff to approve."""
    proof_url = clean_https_url(proof_url, field="proofUrl", code="INVALID_PROOF", required=True)
    with transaction.atomic():
        circle = _verifiable_circle(user, circle_id)
        return VerificationRequest.objects.create(circle=circle, user=user, method=VerificationRequest.Method.PROOF,
                                                  proof_url=proof_url)


def decide_verification(*, actor: Any, request_id: int, approve: bool) -> VerificationRequest:
    """A circle admin (or operations staff) approves or rejects uploaded proof; recorded with who and when."""
    with transaction.atomic():
        request = VerificationRequest.objects.select_for_update().filter(
            pk=request_id if is_int(request_id) else 0, method=VerificationRequest.Method.PROOF,
            status=VerificationRequest.Status.PENDING).first()
        if request is None:
            raise NotFound(field="requestId")
        if not actor.is_staff:
            seat = CircleMember.objects.filter(circle_id=request.circle_id, user=actor, left_at__isnull=True).first()
            if seat is None:
                raise NotFound(field="requestId")
            require_role(seat, *ADMINS)
        if approve:
            _approve(request, by=actor)
        else:
            request.status, request.decided_by, request.decided_at = (VerificationRequest.Status.REJECTED, actor,
                                                                      clock.now())
            request.save(update_fields=["status", "decided_by", "decided_at"])
    return request


def _approve(request: VerificationRequest, *, by: Any | None) -> None:
    request.status, request.decided_by, request.decided_at = VerificationRequest.Status.APPROVED, by, clock.now()
    request.save(update_fields=["status", "decided_by", "decided_at"])
    CircleMember.objects.filter(circle_id=request.circle_id, user_id=request.user_id, left_at__isnull=True).update(
        verified_at=request.decided_at, verified_by=by, verification_method=request.method)
