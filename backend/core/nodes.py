"""Relay `node(id:)` / `nodes(ids:)`: every node type is fetched through `core.ids.fetch_scoped`.

An app registers each of its node types once, next to the type:

    nodes.register(Message, scoped=lambda user: selectors.visible_messages_of(user))

`scoped(user)` is the queryset of what that user may see, so another user's id (or a stranger's, or a
garbled one) resolves to null, exactly like a missing one. `lookup` names the column matched when the scoped
rows are not the objects themselves (a Conversation is resolved from the caller's membership), and `render`
turns a row into what the type resolves from when that is not the row itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import graphene
from django.db.models import Model, QuerySet

from .errors import NotFound, ValidationFailed
from .graphql import require_user
from .ids import fetch_scoped, type_of
from .pagination import MAX_PAGE_SIZE


@dataclass(frozen=True)
class NodeType:
    graphene_type: type[graphene.ObjectType]
    scoped: Callable[[Any], QuerySet]
    model: type[Model] | None
    lookup: str | None
    render: Callable[[Any], Any] | None


_registry: dict[str, NodeType] = {}


NODE_TYPE_TAG = "_quanzi_node_type"  # set on a value resolve_node returns: the type its id named


def register(graphene_type: type[graphene.ObjectType], *, scoped: Callable[[Any], QuerySet],
             model: type[Model] | None = None, lookup: str | None = None,
             render: Callable[[Any], Any] | None = None) -> type[graphene.ObjectType]:
    """Make `graphene_type` resolvable by `node(id:)` / `nodes(ids:)`. Call once per type, at import of the
    app's schema module (before the root schema is built).

    scoped(user): the rows the user may see. model: the class of the rows the type resolves from (None when
    `render` turns a row into an instance of the type itself). lookup: the scoped rows' column holding the
    id's key when they are not the named objects. render: row → what the type resolves from.
    """
    name = graphene_type._meta.name
    assert graphene.relay.Node in graphene_type._meta.interfaces, f"{name} does not implement Node"
    assert name not in _registry or _registry[name].graphene_type is graphene_type, f"{name} registered twice"
    _registry[name] = NodeType(graphene_type=graphene_type, scoped=scoped, model=model, lookup=lookup,
                               render=render)
    # `node` returns the Node interface: GraphQL asks each type whether a resolved value is one of its own.
    # Two types may resolve from one model (a loan is a LoanRequest to lenders and a MyLoan to its borrower):
    # a value resolve_node tagged with the type its id named belongs to that type only.
    def is_type_of(cls, root, info) -> bool:
        tagged = getattr(root, NODE_TYPE_TAG, None)
        if tagged is not None:
            return tagged == name
        return isinstance(root, cls) or (model is not None and isinstance(root, model))

    graphene_type.is_type_of = classmethod(is_type_of)
    return graphene_type


def registered() -> dict[str, NodeType]:
    return dict(_registry)


def resolve_node(info, global_id: object) -> Any:
    """The object named by a global id if the caller may see it, else None (missing, foreign, garbled)."""
    user = require_user(info)
    entry = _registry.get(type_of(global_id) or "")
    if entry is None:
        return None
    try:
        row = fetch_scoped(global_id, type_name=entry.graphene_type._meta.name, scoped=entry.scoped(user),
                           lookup=entry.lookup)
    except NotFound:
        return None
    value = entry.render(row) if entry.render else row
    try:
        setattr(value, NODE_TYPE_TAG, entry.graphene_type._meta.name)
    except AttributeError:  # a value that takes no attributes is its own type (isinstance decides)
        pass
    return value


class NodeQuery(graphene.ObjectType):
    node = graphene.Field(graphene.relay.Node, id=graphene.ID(required=True),
                          description="Refetch any object by its global id; null when missing or not mine.")
    nodes = graphene.Field(
        graphene.NonNull(graphene.List(graphene.relay.Node)), ids=graphene.List(graphene.NonNull(graphene.ID),
                                                                                required=True),
        description=f"`node` for up to {MAX_PAGE_SIZE} ids, in the same order (null where not found).")

    @staticmethod
    def resolve_node(root, info, id):
        return resolve_node(info, id)

    @staticmethod
    def resolve_nodes(root, info, ids):
        require_user(info)
        if len(ids) > MAX_PAGE_SIZE:
            raise ValidationFailed(f"At most {MAX_PAGE_SIZE} ids.", code="TOO_MANY_IDS", field="ids")
        return [resolve_node(info, gid) for gid in ids]
