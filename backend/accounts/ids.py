"""The one global id of a user, used by every app and every channel (GraphQL, socket frames, push data).

A user's global id is base64("User:<token>") where the token is an opaque, stable 128-bit value computed from
the pk with a keyed permutation (`core.crypto.KeyRing.public_token`): ids look random, are not sequential and
cannot be walked or forged, and rendering one needs no database read (frames are rendered on the socket's
event loop). Encoding and decoding live here and nowhere else.
"""

from __future__ import annotations

from backend.core.crypto import keyring
from backend.core.ids import decode_id, encode_id, register_public_key

USER = "User"
_CONTEXT = "accounts.user"


def public_token(pk: int) -> str:
    return keyring().public_token(pk, context=_CONTEXT)


def _parse_token(raw: str) -> int:
    return keyring().open_public_token(raw, context=_CONTEXT)


# Global ids of "User" carry the token; core.ids.decode_key / fetch_scoped turn it back into the pk.
register_public_key(USER, field="pk", parse=_parse_token)


def user_gid(user: object) -> str | None:
    """The global id of a user, given the user or their pk (None stays None)."""
    pk = getattr(user, "pk", user)
    return encode_id(USER, public_token(int(pk))) if pk else None


def decode_user(global_id: object, *, field: str) -> int:
    """The pk named by a user's global id; anything else is NOT_FOUND."""
    return decode_id(global_id, type_name=USER, field=field)
