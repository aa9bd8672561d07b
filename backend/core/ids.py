"""Relay global ids and the one helper that fetches an object by id for a user (no BOLA).

A global id is base64("<Type>:<key>"). The key is the primary key, except for types that registered a public
key column with `register_public_key` (users: a random uuid, so their ids cannot be walked). Decoding of every
type goes through `decode_key`, fetching through `fetch_scoped`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Model, QuerySet
from graphql_relay import from_global_id, to_global_id

from .errors import NotFound

MAX_PK = 2**63 - 1  # the largest BigAutoField value; beyond it databases raise instead of finding nothing


@dataclass(frozen=True)
class PublicKey:
    """A type whose global id names a public column instead of the pk."""

    field: str  # the model field the key is looked up in, e.g. "public_id"
    parse: Callable[[str], object]  # canonical text -> value; raises ValueError for anything else


_public_keys: dict[str, PublicKey] = {}


def register_public_key(type_name: str, *, field: str, parse: Callable[[str], object]) -> None:
    """Declare that global ids of `type_name` encode `field` (parsed by `parse`) rather than the pk."""
    _public_keys[type_name] = PublicKey(field=field, parse=parse)


def encode_id(type_name: str, key: object) -> str:
    return to_global_id(type_name, str(key))


def type_of(global_id: object) -> str | None:
    """The type name inside a global id, or None for anything that is not one."""
    if not isinstance(global_id, str) or len(global_id) > 200:
        return None
    try:
        kind, _raw = from_global_id(global_id)
    except Exception:
        return None
    return kind or None


def _parse_pk(raw: str) -> int:
    # Only the canonical spelling (ASCII digits, no sign, spaces, underscores or leading zeros): int() would
    # also take " 1", "1_0" or "١", giving one object many ids.
    if not raw.isascii() or not raw.isdigit() or raw.startswith("0") or len(raw) > 19:
        raise ValueError(raw)
    pk = int(raw)
    if pk > MAX_PK:
        raise ValueError(raw)
    return pk


def decode_key(global_id: object, *, type_name: str, field: str = "id") -> tuple[str, object]:
    """(lookup field, value) named by a global id of the expected type; anything else is NOT_FOUND (never a
    crash, never a hint)."""
    if type_of(global_id) != type_name:
        raise NotFound(field=field)
    _kind, raw = from_global_id(global_id)
    public = _public_keys.get(type_name)
    try:
        if public is not None:
            return public.field, public.parse(raw)
        return "pk", _parse_pk(raw)
    except (ValueError, TypeError) as exc:
        raise NotFound(field=field) from exc


def decode_id(global_id: object, *, type_name: str, field: str = "id") -> int:
    """The pk named by a global id of a pk-keyed type (see `decode_key`)."""
    key_field, key = decode_key(global_id, type_name=type_name, field=field)
    assert key_field == "pk", f"{type_name} ids name {key_field}, not the pk: use decode_key or fetch_scoped"
    return key


def fetch_scoped(global_id: object, *, type_name: str, scoped: QuerySet, field: str = "id",
                 lookup: str | None = None) -> Model:
    """Fetch by global id from a queryset that is already limited to what the caller may see.

    `lookup` names the column the id's key is matched against when the scoped rows are not the named objects
    themselves (e.g. a Conversation id matched against the caller's memberships' `conversation_id`).
    """
    key_field, key = decode_key(global_id, type_name=type_name, field=field)
    column = lookup or key_field
    if lookup and key_field != "pk":
        column = f"{lookup}__{key_field}"
    obj = scoped.filter(**{column: key}).first()
    if obj is None:
        raise NotFound(field=field)
    return obj
