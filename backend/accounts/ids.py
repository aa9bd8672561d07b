"""Global ids of users, shared by every app that takes a user id from a client."""

from __future__ import annotations

from backend.core.errors import NotFound
from backend.core.ids import decode_id, encode_id

USER = "User"


def user_gid(pk: int | None) -> str | None:
    return encode_id(USER, pk) if pk else None


def decode_user(global_id: object, *, field: str) -> int:
    """A user's global id: "User:<pk>" as other users see them, or the "Viewer:<pk>" of `me { id }`."""
    try:
        return decode_id(global_id, type_name=USER, field=field)
    except NotFound:
        return decode_id(global_id, type_name="Viewer", field=field)
