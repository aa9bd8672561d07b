"""Errors, limits and small helpers the circles use cases share."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlparse

from backend.core import text as text_rules
from backend.core.appsettings import app_setting
from backend.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed

from .. import selectors
from ..models import Circle, CircleMember

Role = CircleMember.Role

DEFAULTS = {
    "VOUCHES_PER_MEMBER": 3,  # each member may vouch for this many co-members per circle
    "CONTACT_MATCH_PER_HOUR": 5,  # contact uploads per user per hour
    "CONTACT_MATCH_MAX_PHONES": 500,  # phone numbers per upload
    "PHONE_LOOKUPS_PER_HOUR": 20,
    "FRIEND_REQUESTS_PER_HOUR": 30,
    "INVITE_MAX_USES": 1000,
    "INVITE_MAX_HOURS": 24 * 30,
    "EMAIL_CODE_TTL_SECONDS": 900,
    "EMAIL_CODE_MAX_ATTEMPTS": 5,
    "POST_MAX_CHARS": 5000,
    "POST_MAX_IMAGES": 9,
    "COMMENT_MAX_CHARS": 1000,
    "EVENT_MAX_CAPACITY": 10000,
    "EVENT_REMIND_HOURS": 24,
}


def limit(name: str) -> int:
    """`settings.QUANZI_CIRCLES[name]` beats the default (read at call time so tests can change it)."""
    return int(app_setting("QUANZI_CIRCLES", DEFAULTS, name))


class Blacklisted(PermissionDenied):
    code = "BLACKLISTED"
    default_message = "Your account is restricted after a loan default."


class NotAllowed(PermissionDenied):
    code = "NOT_ALLOWED"
    default_message = "Your role in this circle does not allow that."


class NotAMember(PermissionDenied):
    code = "NOT_A_MEMBER"
    default_message = "You are not a member of this circle."


class AlreadyMember(Conflict):
    code = "ALREADY_MEMBER"
    default_message = "Already a member of this circle."


def clean_line(value: object, *, field: str, code: str, max_chars: int, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or len(value.strip()) > max_chars or not text_rules.is_clean_line(value) \
            or (required and text_rules.is_blank(value)):
        raise ValidationFailed(f"{field} has {'1' if required else '0'} to {max_chars} characters on one line.",
                               code=code, field=field)
    return value.strip()


def clean_text(value: object, *, field: str, code: str, max_chars: int, required: bool = False) -> str:
    if value is None:
        value = ""
    if not isinstance(value, str) or len(value) > max_chars or not text_rules.is_storable(value) \
            or (required and text_rules.is_blank(value)):
        raise ValidationFailed(f"{field} has at most {max_chars} characters.", code=code, field=field)
    return value


def clean_https_url(value: object, *, field: str, code: str, required: bool = False) -> str:
    if value in (None, "") and not required:
        return ""
    if not isinstance(value, str) or len(value) > 500 or not text_rules.is_clean_line(value):
        raise ValidationFailed("An https URL is required.", code=code, field=field)
    parsed = urlparse(value)
    if parsed.scheme != "https" or not parsed.netloc:
        raise ValidationFailed("An https URL is required.", code=code, field=field)
    return value


def new_code(length: int = 10) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed from a poster
    return "".join(secrets.choice(alphabet) for _ in range(length))


def refuse_blacklisted(user: Any) -> None:
    if selectors.is_blacklisted(user.pk):
        raise Blacklisted()


def lock_circle(circle_id: object, *, field: str = "circleId") -> Circle:
    if not isinstance(circle_id, int):
        raise NotFound(field=field)
    circle = Circle.objects.select_for_update().filter(pk=circle_id).first()
    if circle is None:
        raise NotFound(field=field)
    return circle


def member_seat(circle: Circle, user_id: int, *, field: str = "circleId") -> CircleMember:
    """The caller's active seat. A circle that is not public does not exist for someone who was never in it
    (NOT_FOUND, as for a missing id); a public circle's non-members and any former member get NOT_A_MEMBER."""
    seat = CircleMember.objects.filter(circle=circle, user_id=user_id, left_at__isnull=True).first()
    if seat is not None:
        return seat
    former = CircleMember.objects.filter(circle=circle, user_id=user_id).exists()
    if circle.visibility != Circle.Visibility.PUBLIC and not former:
        raise NotFound(field=field)
    raise NotAMember(field=field)


def require_role(seat: CircleMember, *roles: str) -> None:
    if seat.role not in roles:
        raise NotAllowed()


ADMINS = (Role.OWNER, Role.ADMIN)
