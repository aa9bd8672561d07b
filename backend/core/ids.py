"""Relay global ids and the one helper that fetches an object by id for a user (no BOLA)."""

from __future__ import annotations

from django.db.models import Model, QuerySet
from graphql_relay import from_global_id, to_global_id

from .errors import NotFound

MAX_PK = 2**63 - 1  # the largest BigAutoField value; beyond it databases raise instead of finding nothing


def encode_id(type_name: str, pk: int) -> str:
    return to_global_id(type_name, str(pk))


def decode_id(global_id: object, *, type_name: str, field: str = "id") -> int:
    """Decode a global id of the expected type; anything else is NOT_FOUND (never a crash, never a hint)."""
    if not isinstance(global_id, str) or len(global_id) > 200:
        raise NotFound(field=field)
    try:
        kind, raw = from_global_id(global_id)
    except Exception as exc:
        raise NotFound(field=field) from exc
    # Only the canonical spelling (ASCII digits, no sign, spaces, underscores or leading zeros): int() would
    # also take " 1", "1_0" or "١", giving one object many ids.
    if kind != type_name or not raw.isascii() or not raw.isdigit() or raw.startswith("0") or len(raw) > 19:
        raise NotFound(field=field)
    pk = int(raw)
    if pk > MAX_PK:
        raise NotFound(field=field)
    return pk


def fetch_scoped(global_id: object, *, type_name: str, scoped: QuerySet, field: str = "id") -> Model:
    """Fetch by global id from a queryset that is already limited to what the caller may see."""
    pk = decode_id(global_id, type_name=type_name, field=field)
    obj = scoped.filter(pk=pk).first()
    if obj is None:
        raise NotFound(field=field)
    return obj
