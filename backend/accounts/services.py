"""Every write of the accounts app: sign-up, login, tokens, devices."""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection, transaction
from django.db.models import F

from backend.core import clock, ratelimit, realtime
from backend.core.compiled import CompiledQuery
from backend.core.crypto import keyring
from backend.core.errors import DomainError, NotAuthenticated, ValidationFailed
from backend.core.phone import mask_phone, normalize_phone
from backend.core.text import is_blank, is_clean_line, is_storable

from . import names, signals
from .models import (
    Device,
    OtpChallenge,
    RefreshToken,
    User,
    id_number_index,
    normalize_id_number,
    phone_index,
)
from .sms import get_sms_sender
from .tokens import (
    TokenExpired,
    TokenInvalid,
    decode_access_token,
    hash_refresh_token,
    issue_access_token,
    new_refresh_token,
)

log = logging.getLogger("quanzi.accounts")
HOUR = 3600


class OtpInvalid(DomainError):
    code = "OTP_INVALID"
    default_message = "The code is wrong or has expired."


class OtpAttemptsExceeded(DomainError):
    code = "OTP_ATTEMPTS_EXCEEDED"
    default_message = "Too many wrong codes. Request a new one."


class InvalidCredentials(DomainError):
    code = "INVALID_CREDENTIALS"
    default_message = "Phone number or password is wrong."


class IdNumberInvalid(ValidationFailed):
    code = "ID_NUMBER_INVALID"
    default_message = "This is not a valid resident ID number."


class InvalidCurrentPassword(DomainError):
    code = "INVALID_CURRENT_PASSWORD"
    default_message = "The current password is wrong."


class SessionEnded(TokenInvalid):
    """The device was signed out, or signed in again since this token was issued (a newer generation).

    Same TOKEN_INVALID code over HTTP; the socket tells it apart from an expired token (close 4403, not 4401).
    """

    default_message = "This device has been signed out."


class RefreshTokenReused(DomainError):
    code = "REFRESH_TOKEN_REUSED"
    default_message = "This refresh token was already used; the device has been signed out."


@dataclass(frozen=True)
class DeviceInfo:
    name: str = ""
    platform: str = Device.Platform.ANDROID
    fcm_token: str = ""
    installation_id: str = ""

    def validated(self) -> DeviceInfo:
        if self.platform not in Device.Platform.values:
            raise ValidationFailed("Unknown platform.", code="INVALID_PLATFORM", field="device.platform")
        if len(self.name) > 100 or len(self.installation_id) > 200 or len(self.fcm_token) > 4096:
            raise ValidationFailed("Device details are too long.", code="INVALID_DEVICE", field="device")
        _check_device_text(self.name, self.fcm_token, self.installation_id, field="device")
        return self


def _check_device_text(*values: str, field: str) -> None:
    if not all(is_clean_line(v) for v in values):
        raise ValidationFailed("Device details contain invalid characters.", code="INVALID_DEVICE", field=field)


# Longer passwords are refused before hashing: Argon2 over a megabyte is a cheap way to burn our CPU.
PASSWORD_MAX_CHARS = 256


def _password_acceptable(password: object) -> bool:
    return isinstance(password, str) and len(password) <= PASSWORD_MAX_CHARS and is_storable(password)


@dataclass(frozen=True)
class Session:
    user: User
    device: Device
    access_token: str
    access_expires_at: dt.datetime
    refresh_token: str
    refresh_expires_at: dt.datetime
    created_user: bool = False


def _code_hash(phone_idx: str, code: str) -> str:
    return keyring().blind_index(f"{phone_idx}:{code}", context="accounts.otp")


def request_login_code(*, phone: str, ip: str | None = None) -> OtpChallenge:
    """Send a 6-digit code by SMS. Limited per phone and per IP so nobody can flood a number."""
    phone = normalize_phone(phone)
    idx = phone_index(phone)
    cfg = settings.QUANZI
    ratelimit.hit("otp-phone", idx, limit=cfg["OTP_PER_PHONE_PER_HOUR"], window_seconds=HOUR)
    if ip:
        ratelimit.hit("otp-ip", ip, limit=cfg["OTP_PER_IP_PER_HOUR"], window_seconds=HOUR)
    code = f"{secrets.randbelow(1_000_000):06d}"
    now = clock.now()
    with transaction.atomic():
        # A new code replaces any earlier one still open.
        OtpChallenge.objects.filter(phone_index=idx, consumed_at__isnull=True).update(consumed_at=now)
        challenge = OtpChallenge.objects.create(
            phone_index=idx,
            code_hash=_code_hash(idx, code),
            expires_at=now + dt.timedelta(seconds=cfg["OTP_TTL_SECONDS"]),
            requested_ip=ip,
        )
    get_sms_sender().send(phone, f"【圈子 Quanzi】Your login code is {code}. It expires in 5 minutes.")
    log.info("otp sent to %s", mask_phone(phone))
    return challenge


def _check_login_limits(idx: str | None, ip: str | None, *, bucket: str = "login") -> None:
    cfg = settings.QUANZI
    if idx:
        ratelimit.hit(f"{bucket}-phone", idx, limit=cfg["LOGIN_PER_PHONE_PER_HOUR"], window_seconds=HOUR)
    if ip:
        ratelimit.hit(f"{bucket}-ip", ip, limit=cfg["LOGIN_PER_IP_PER_HOUR"], window_seconds=HOUR)


def check_admin_login_limits(*, phone: str, ip: str | None) -> None:
    """The back office's sign-in form counts like the app's logins (per phone and per IP), in its own buckets
    so guessing at one door does not lock the other."""
    try:
        idx = phone_index(phone)
    except ValidationFailed:
        idx = None  # not a phone number: it cannot sign anyone in, but it still counts against the address
    _check_login_limits(idx, ip, bucket="admin-login")


def login_with_code(
    *, phone: str, code: str, device: DeviceInfo, display_name: str = "", ip: str | None = None
) -> Session:
    """Verify the SMS code; sign the user up on first login. Wrong codes count towards a hard limit."""
    phone = normalize_phone(phone)
    device = device.validated()
    idx = phone_index(phone)
    _check_login_limits(idx, ip)
    if not _well_formed_code(code):
        raise OtpInvalid(field="code")
    display_name = (display_name or "").strip()
    if len(display_name) > 64:
        raise ValidationFailed("Display name is too long.", code="INVALID_DISPLAY_NAME", field="displayName")
    if not is_clean_line(display_name):
        raise ValidationFailed("Display name contains invalid characters.", code="INVALID_DISPLAY_NAME",
                               field="displayName")
    if is_blank(display_name):
        display_name = ""
    if display_name and names.impersonation_problem(display_name):
        raise ValidationFailed("That name is reserved for the bank's verified accounts.",
                               code="DISPLAY_NAME_RESERVED", field="displayName")
    challenge = _spend_code_attempt(idx, code)
    with transaction.atomic():
        _consume_code(challenge)
        user = User.objects.filter(phone_index=idx).first()
        created = user is None
        if created:
            user = User.objects.create_user(
                phone, display_name=display_name or f"用户{phone[-4:]}", kyc_level=User.KycLevel.BASIC
            )
        elif not user.is_active:
            raise InvalidCredentials("This account is disabled.", code="ACCOUNT_DISABLED")
        return _start_session(user, device, created_user=created)


def _well_formed_code(code: object) -> bool:
    return isinstance(code, str) and code.isdigit() and len(code) == 6


def _spend_code_attempt(idx: str, code: object) -> OtpChallenge:
    """Spend one attempt on the open code and compare; the matching challenge is returned (not yet consumed).

    Must run outside a transaction, so a spent attempt sticks even when the caller fails afterwards. Checking
    and counting are one conditional UPDATE: fifty parallel guesses cannot all read "attempts < max" first.
    """
    if not _well_formed_code(code):
        raise OtpInvalid(field="code")
    challenge = OtpChallenge.objects.filter(phone_index=idx, consumed_at__isnull=True).first()
    if challenge is None or challenge.expires_at <= clock.now():
        raise OtpInvalid(field="code")
    max_attempts = settings.QUANZI["OTP_MAX_ATTEMPTS"]
    allowed = OtpChallenge.objects.filter(pk=challenge.pk, attempts__lt=max_attempts).update(
        attempts=F("attempts") + 1)
    if not allowed:
        raise OtpAttemptsExceeded(field="code")
    if not hmac.compare_digest(challenge.code_hash, _code_hash(idx, code)):
        if not OtpChallenge.objects.filter(pk=challenge.pk, attempts__lt=max_attempts).exists():
            raise OtpAttemptsExceeded(field="code")
        raise OtpInvalid(field="code")
    return challenge


def _consume_code(challenge: OtpChallenge) -> None:
    claimed = OtpChallenge.objects.filter(pk=challenge.pk, consumed_at__isnull=True).update(consumed_at=clock.now())
    if not claimed:  # a concurrent request used this code first
        raise OtpInvalid(field="code")


def login_with_password(*, phone: str, password: str, device: DeviceInfo, ip: str | None = None) -> Session:
    phone = normalize_phone(phone)
    device = device.validated()
    idx = phone_index(phone)
    _check_login_limits(idx, ip)
    if not _password_acceptable(password):
        raise InvalidCredentials(field="password")
    user = User.objects.filter(phone_index=idx).first()
    if user is None:
        User().set_password(password or "x")  # equal work for unknown numbers
        raise InvalidCredentials(field="password")
    if not password or not user.check_password(password) or not user.is_active:
        raise InvalidCredentials(field="password")
    with transaction.atomic():
        return _start_session(user, device)


def set_password(*, user: User, device: Device | None, password: str, current_password: str | None = None,
                 code: str | None = None, ip: str | None = None) -> int:
    """Change (or first set) the password. Proves the person is the owner, not just a holder of a bearer token:
    the current password, or a fresh SMS code when the account has none. Signs out every other device and
    sends a security notice. Returns how many other devices were signed out."""
    _check_login_limits(user.phone_index, ip)  # guessing the current password here counts like a login
    _check_new_password(user, password)
    if user.has_usable_password():
        if not _password_acceptable(current_password) or not current_password \
                or not user.check_password(current_password):
            raise InvalidCurrentPassword(field="currentPassword")
        challenge = None
    else:
        challenge = _spend_code_attempt(user.phone_index, code)
    now = clock.now()
    with transaction.atomic():
        if challenge is not None:
            _consume_code(challenge)
        user.set_password(password)
        user.save(update_fields=["password"])
        others = Device.objects.filter(user=user, revoked_at__isnull=True)
        if device is not None:
            others = others.exclude(pk=device.pk)
        signed_out = list(others)
        for other in signed_out:
            _revoke_device(other, reason="password_changed", now=now)
        signals.announce(user_id=user.pk, event=signals.PASSWORD_CHANGED, devices_signed_out=len(signed_out))
    return len(signed_out)


def _check_new_password(user: User, password: str) -> None:
    if not _password_acceptable(password):
        raise ValidationFailed(f"A password has at most {PASSWORD_MAX_CHARS} characters and no NUL.",
                               code="INVALID_PASSWORD", field="password")
    try:
        validate_password(password, user)
    except DjangoValidationError as exc:
        raise ValidationFailed(" ".join(exc.messages), code="WEAK_PASSWORD", field="password") from exc


def _start_session(user: User, info: DeviceInfo, *, created_user: bool = False) -> Session:
    now = clock.now()
    device = None
    if info.installation_id:
        # Same app installation signing in again: reuse its row and burn its old chain.
        device = Device.objects.filter(user=user, installation_id=info.installation_id).first()
    if device is None:
        device = Device.objects.create(
            user=user, name=info.name, platform=info.platform, fcm_token=info.fcm_token,
            installation_id=info.installation_id,
        )
        if not created_user and Device.objects.filter(user=user).exclude(pk=device.pk).exists():
            # Not the account's first installation: tell the owner (on the devices they already have).
            signals.announce(user_id=user.pk, event=signals.NEW_DEVICE_SIGN_IN, device_name=info.name,
                             platform=info.platform)
    else:
        RefreshToken.objects.filter(device=device, revoked_at__isnull=True).update(revoked_at=now)
        # A new session generation: access tokens of any earlier sign-in on this row stay dead.
        Device.objects.filter(pk=device.pk).update(
            name=info.name, platform=info.platform, fcm_token=info.fcm_token, revoked_at=None, revoked_reason="",
            last_seen_at=now, push_enabled=True, generation=F("generation") + 1,
        )
        device.refresh_from_db()
    # A phone number's owner now has a device: unregister the same FCM token from any other account.
    if info.fcm_token:
        Device.objects.filter(fcm_token=info.fcm_token).exclude(pk=device.pk).update(fcm_token="")
    return _issue_tokens(user, device, created_user=created_user)


def _issue_tokens(user: User, device: Device, *, created_user: bool = False) -> Session:
    raw, hashed = new_refresh_token()
    refresh_expires = clock.now() + dt.timedelta(days=settings.QUANZI["REFRESH_TOKEN_DAYS"])
    RefreshToken.objects.create(device=device, token_hash=hashed, expires_at=refresh_expires)
    access, access_expires = issue_access_token(user_id=user.pk, device_id=device.pk, generation=device.generation)
    return Session(user, device, access, access_expires, raw, refresh_expires, created_user)


def refresh_session(*, refresh_token: str) -> Session:
    """Rotate: the presented token is spent and a new pair issued. Reuse of a spent token revokes the device."""
    if not isinstance(refresh_token, str) or not refresh_token or len(refresh_token) > 200 \
            or not refresh_token.isascii():
        raise TokenInvalid(field="refreshToken")
    now = clock.now()
    with transaction.atomic():
        token = (
            RefreshToken.objects.select_for_update()
            .select_related("device__user")
            .filter(token_hash=hash_refresh_token(refresh_token))
            .first()
        )
        if token is None or token.revoked_at is not None:
            raise TokenInvalid(field="refreshToken")
        device = token.device
        if token.rotated_at is not None:
            # Someone holds a copy of a spent token: burn the whole chain. Committed before we answer.
            _revoke_device(device, reason="refresh_reuse", now=now)
            log.warning("refresh token reuse on device %s: chain revoked", device.pk)
        else:
            return _rotate(token, device, now)
    raise RefreshTokenReused(field="refreshToken")


def _rotate(token: RefreshToken, device: Device, now: dt.datetime) -> Session:
    if token.expires_at <= now or not device.is_active or not device.user.is_active:
        raise TokenInvalid(field="refreshToken")
    token.rotated_at = now
    token.save(update_fields=["rotated_at"])
    Device.objects.filter(pk=device.pk).update(last_seen_at=now)
    return _issue_tokens(device.user, device)


def _revoke_device(device: Device, *, reason: str, now: dt.datetime) -> None:
    RefreshToken.objects.filter(device=device, revoked_at__isnull=True).update(revoked_at=now)
    Device.objects.filter(pk=device.pk, revoked_at__isnull=True).update(revoked_at=now, revoked_reason=reason)
    realtime.ring_on_commit(realtime.device_group(device.pk), {"type": "session.revoked"})


def logout(*, device: Device) -> None:
    with transaction.atomic():
        _revoke_device(device, reason="logout", now=clock.now())


def logout_all_devices(*, user: User) -> int:
    now = clock.now()
    with transaction.atomic():
        devices = list(Device.objects.filter(user=user, revoked_at__isnull=True))
        for device in devices:
            _revoke_device(device, reason="logout_all", now=now)
        signals.announce(user_id=user.pk, event=signals.SIGNED_OUT_EVERYWHERE, devices_signed_out=len(devices))
    return len(devices)


def update_device_push_target(*, device: Device, fcm_token: str = "", installation_id: str = "") -> Device:
    """Phones report a new FCM registration token (or, from firebase-admin 7.7 on, an installation id)."""
    if len(fcm_token) > 4096 or len(installation_id) > 200:
        raise ValidationFailed("Push target is too long.", code="INVALID_DEVICE", field="fcmToken")
    _check_device_text(fcm_token, installation_id, field="fcmToken")
    with transaction.atomic():
        if fcm_token:
            Device.objects.filter(fcm_token=fcm_token).exclude(pk=device.pk).update(fcm_token="")
        device.fcm_token = fcm_token
        if installation_id:
            device.installation_id = installation_id
        device.push_enabled = bool(fcm_token or device.installation_id)
        device.save(update_fields=["fcm_token", "installation_id", "push_enabled"])
    return device


@dataclass(frozen=True)
class AccessGrant:
    """What a valid access token proves: who, on which device, in which session generation, until when."""

    user: User
    device: Device
    generation: int
    expires_at: dt.datetime


def verify_access_token(token: object) -> AccessGrant:
    """Resolve a bearer token; a signed-out device's tokens (and a newer sign-in's predecessors) stop at once."""
    claims = decode_access_token(token)
    try:
        user_id, device_id, generation = int(claims["sub"]), int(claims["did"]), int(claims["gen"])
    except (ValueError, TypeError) as exc:
        raise TokenInvalid() from exc
    device = check_session(user_id=user_id, device_id=device_id, generation=generation)
    return AccessGrant(device.user, device, generation, dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC))


# Asked at every request, every socket's auth and every heartbeat (a reconnect storm: thousands a second):
# compiled once per process (core.compiled); building the queryset cost ~0.8 ms of CPU, the query ~0.1 ms.
_SESSION_DEVICE = CompiledQuery(
    lambda device_id, user_id: Device.objects.select_related("user").filter(pk=device_id, user_id=user_id),
    device_id=1_999_392_041, user_id=1_999_392_042,
)


def check_session(*, user_id: int, device_id: int, generation: int, expires_at: dt.datetime | None = None
                  ) -> Device:
    """Is this session still alive? Asked at every request and again on every socket heartbeat."""
    if expires_at is not None and expires_at <= clock.now():
        raise TokenExpired()
    if not (0 < user_id < 2**63 and 0 < device_id < 2**63):  # the queryset matched nothing; SQL would overflow
        raise TokenInvalid()
    found = _SESSION_DEVICE.objects(connection, device_id=device_id, user_id=user_id)
    if not found:
        raise TokenInvalid()
    device = found[0]
    if not device.is_active or device.generation != generation:
        raise SessionEnded()
    if not device.user.is_active:
        raise NotAuthenticated("This account is disabled.", code="ACCOUNT_DISABLED")
    return device


def authenticate_access_token(token: object) -> tuple[User, Device]:
    grant = verify_access_token(token)
    return grant.user, grant.device


def disable_push_target(*, device_id: int, kind: str, value: str) -> bool:
    """FCM says this token or installation id is dead: stop pushing there until the phone reports a new one.

    Conditional on the value that failed, so a token the phone refreshed meanwhile survives. The device stays
    signed in.
    """
    devices = Device.objects.filter(pk=device_id)
    if kind == "token":
        return bool(devices.filter(fcm_token=value).update(fcm_token="", push_enabled=False))
    return bool(devices.filter(installation_id=value).update(push_enabled=False))


def record_identity_verification(*, user: User, id_number: object) -> User:
    """The bank checked the user's identity document (KYC): keep the keyed blind index of the ID number (never
    the number) and raise the KYC level to verified (never lower it). Other rules compare indexes, e.g. a
    referral between two accounts of one person is refused."""
    number = normalize_id_number(id_number)
    if number is None:
        raise IdNumberInvalid(field="idNumber")
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        user.id_number_index = id_number_index(number)
        user.kyc_level = max(user.kyc_level, User.KycLevel.VERIFIED)
        user.save(update_fields=["id_number_index", "kyc_level"])
    log.info("identity verified for user %s", user.pk)
    return user
