"""Who may reach whom: a policy hook that apps below the social graph consult without importing it.

Chat must not import circles, yet "who may open a direct chat, add someone to a group, or deliver a message"
is decided by friendships, shared circles and blocks that live in circles. So circles registers its policy
here from its AppConfig.ready(), and chat asks `may_contact` / `blocked_since`.

With nothing registered (a chat-only deployment, or apps loaded without circles) everyone may contact
everyone and nobody is blocked: the social rules live with the social graph, and there is none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

ContactPolicy = Callable[[int, int], bool]
BlockLookup = Callable[[int, int], "dt.datetime | None"]

SendPolicy = Callable[[str, int], bool]

_contact_policies: list[ContactPolicy] = []
_block_lookups: list[BlockLookup] = []
_send_policies: list[SendPolicy] = []


def register_contact_policy(may_contact_fn: ContactPolicy, *, blocked_since_fn: BlockLookup | None = None) -> None:
    """Register `may_contact_fn(user_id, other_id) -> bool` (and optionally `blocked_since_fn(blocker_id,
    other_id) -> datetime | None`). Registering the same function twice is a no-op."""
    if may_contact_fn not in _contact_policies:
        _contact_policies.append(may_contact_fn)
    if blocked_since_fn is not None and blocked_since_fn not in _block_lookups:
        _block_lookups.append(blocked_since_fn)


def register_send_policy(may_send_fn: SendPolicy) -> None:
    """Register `may_send_fn(conversation_key, user_id) -> bool` for conversations whose membership another app
    manages (e.g. circles muting a member of "circle:<id>")."""
    if may_send_fn not in _send_policies:
        _send_policies.append(may_send_fn)


def may_send(conversation_key: str, user_id: int) -> bool:
    return all(policy(conversation_key, user_id) for policy in _send_policies)


def may_contact(user_id: int, other_id: int) -> bool:
    """May `user_id` open a direct chat with, or add to a group, `other_id`? Every registered policy must agree."""
    return all(policy(user_id, other_id) for policy in _contact_policies)


def blocked_since(blocker_id: int, other_id: int) -> dt.datetime | None:
    """When `blocker_id` blocked `other_id`, or None. Messages from `other_id` after that are not delivered."""
    for lookup in _block_lookups:
        since = lookup(blocker_id, other_id)
        if since is not None:
            return since
    return None
