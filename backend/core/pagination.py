"""Cursor pagination shared by every connection: one page-size rule, one opaque cursor format.

Cursors are base64url of ``<kind>:<value>`` so a cursor from one list is refused by another
(INVALID_CURSOR) instead of silently paging the wrong thing. Pages hold 1 to MAX_PAGE_SIZE items.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence

import graphene

from .errors import ValidationFailed
from .values import is_int

MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 50  # a paged field whose `first` has no declared default serves this many (the cost rule counts it)
MAX_CURSOR_LENGTH = 200


def page_size(value: object, *, default: int = DEFAULT_PAGE_SIZE, field: str = "first") -> int:
    if value is None:
        return default
    if not is_int(value, minimum=1) or value > MAX_PAGE_SIZE:
        raise ValidationFailed(f"Page size is 1 to {MAX_PAGE_SIZE}.", code="INVALID_PAGE_SIZE", field=field)
    return value


def encode_cursor(kind: str, value: str | int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode()


def decode_cursor(cursor: object, *, kind: str, field: str = "after") -> str | None:
    """The value inside a cursor of this kind; None when no cursor was given."""
    if cursor is None:
        return None
    bad = ValidationFailed("Bad cursor.", code="INVALID_CURSOR", field=field)
    if not isinstance(cursor, str) or len(cursor) > MAX_CURSOR_LENGTH:
        raise bad
    try:
        found, sep, value = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise bad from exc
    if not sep or found != kind or not value:
        raise bad
    return value


def decode_int_cursor(cursor: object, *, kind: str, field: str = "after") -> int | None:
    value = decode_cursor(cursor, kind=kind, field=field)
    if value is None:
        return None
    if not value.isdigit() or int(value) <= 0 and kind != "seq":
        raise ValidationFailed("Bad cursor.", code="INVALID_CURSOR", field=field)
    return int(value)


def page_info(edges: Sequence, *, has_next: bool, has_previous: bool) -> graphene.relay.PageInfo:
    return graphene.relay.PageInfo(
        has_next_page=has_next,
        has_previous_page=has_previous,
        start_cursor=edges[0].cursor if edges else None,
        end_cursor=edges[-1].cursor if edges else None,
    )


def connection_type(node_type: type, *, name: str, description: str | None = None) -> type[graphene.ObjectType]:
    """`<name>Connection { edges: [<name>Edge!]!, pageInfo: PageInfo! }` with non-null edges and nodes.

    The edge type is reachable as `.Edge`.
    """
    edge = type(f"{name}Edge", (graphene.ObjectType,), {
        "cursor": graphene.String(required=True),
        "node": graphene.Field(node_type, required=True),
    })
    attrs = {
        "edges": graphene.List(graphene.NonNull(edge), required=True),
        "page_info": graphene.Field(graphene.relay.PageInfo, required=True),
        "Edge": edge,
    }
    if description:
        attrs["__doc__"] = description
    return type(f"{name}Connection", (graphene.ObjectType,), attrs)
