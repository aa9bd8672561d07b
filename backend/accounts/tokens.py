"""Access tokens (short JWTs) and refresh tokens (opaque, stored hashed)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid

import jwt
from django.conf import settings

from backend.core import clock
from backend.core.errors import DomainError

ALGORITHM = "HS256"


class TokenInvalid(DomainError):
    code = "TOKEN_INVALID"
    default_message = "The token is not valid."


class TokenExpired(DomainError):
    code = "TOKEN_EXPIRED"
    default_message = "The token has expired; refresh it."


def issue_access_token(*, user_id: int, device_id: int, generation: int) -> tuple[str, dt.datetime]:
    issued = clock.now()
    expires = issued + dt.timedelta(seconds=settings.QUANZI["ACCESS_TOKEN_SECONDS"])
    claims = {
        "sub": str(user_id),
        "did": device_id,
        "gen": generation,  # the device's session generation; a newer sign-in on the device voids this token
        "typ": "access",
        "iat": int(issued.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, settings.JWT_SIGNING_KEY, algorithm=ALGORITHM), expires


def decode_access_token(token: object) -> dict:
    if not isinstance(token, str) or not token or len(token) > 4096 or not token.isascii():
        raise TokenInvalid()  # JWTs are ASCII; anything else (a lone surrogate) would crash the decoder
    try:
        claims = jwt.decode(
            token,
            settings.JWT_SIGNING_KEY,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "did", "gen", "exp", "typ"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.PyJWTError as exc:
        raise TokenInvalid() from exc
    if claims.get("typ") != "access":
        raise TokenInvalid()
    # Expiry (and issue time) are checked against our clock, not the wall clock, so tests and jobs can move time.
    if int(claims["exp"]) <= int(clock.now().timestamp()):
        raise TokenExpired()
    return claims


def new_refresh_token() -> tuple[str, str]:
    raw = secrets.token_urlsafe(32)
    return raw, hash_refresh_token(raw)


def hash_refresh_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()
