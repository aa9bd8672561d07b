"""Chat limits: defaults here, overridable by ``settings.QUANZI_CHAT`` or ``QUANZI_CHAT_<NAME>`` env vars.

Read at call time (not import time) so tests and benchmarks can change them.
"""

from __future__ import annotations

import os

from django.conf import settings

DEFAULTS: dict[str, int] = {
    "GROUP_MAX_MEMBERS": 500,
    "TITLE_MAX_CHARS": 64,
    "TEXT_MAX_CHARS": 5000,
    "CLIENT_MSG_ID_MAX_CHARS": 64,
    "CARD_MAX_BYTES": 4096,
    "MENTIONS_MAX": 50,
    "RECALL_SECONDS": 120,
    "EDIT_SECONDS": 600,
    # per-user send rate, counted on the shared cache so all nodes count together
    "SEND_LIMIT": 50,
    "SEND_WINDOW_SECONDS": 10,
    "TYPING_LIMIT": 3,
    "TYPING_WINDOW_SECONDS": 5,
    "TYPING_MAX_MEMBERS": 100,  # typing indicators are not relayed in larger conversations
    "READ_RECEIPT_MAX_MEMBERS": 100,  # read receipts go to co-members only in conversations this small
    "PRESENCE_PUSH_MAX_MEMBERS": 20,  # presence changes are pushed to co-members of conversations this small
    "PRESENCE_QUERY_MAX_USERS": 200,
    "RESUME_MAX_GAP": 200,  # more missed messages than this → "resync"
    "RESUME_MAX_CONVERSATIONS": 500,
    "RESUME_CHANGES_PAGE": 200,
    "RESUME_MAX_ADDED": 50,  # conversations joined while away announced per resume ("added_more": ask again)
    "RESUME_ADDED_GRACE_SECONDS": 300,  # the `added_after` cursor looks back this far (late commits, skew)  # edits/recalls replayed per conversation per resume ("more_changes": ask again)
    "PREVIEW_CHARS": 80,
    # every socket's frame budget (a token bucket): each frame costs 1, `resume` 1 more per
    # SOCKET_RESUME_CONVERSATIONS_PER_TOKEN conversations it names (a full resume of 500: 101)
    "SOCKET_FRAME_BUDGET": 120,
    "SOCKET_FRAME_REFILL_PER_SECOND": 10,
    "SOCKET_RESUME_CONVERSATIONS_PER_TOKEN": 5,
    "SOCKET_BUDGET_STRIKES": 30,  # this many refused frames in a row close the socket with 4429
    "SOCKET_AUTH_CONCURRENCY": 64,  # sockets of one process authenticating at once (the rest wait their turn)
    # missed-message push: a message that arrived while the member's socket was live and is still unread
    # this long after their last socket closed is pushed (once per conversation) by a scan run this often
    "MISSED_PUSH_AFTER_SECONDS": 120,
    "MISSED_PUSH_EVERY_SECONDS": 60,
    "MISSED_PUSH_LOOKBACK_SECONDS": 86400,  # only conversations active this recently are scanned
}


def get(name: str) -> int:
    """The limit `name`: env QUANZI_CHAT_<NAME> beats settings.QUANZI_CHAT[name] beats the default."""
    raw = os.environ.get(f"QUANZI_CHAT_{name}")
    if raw:
        return int(raw)
    configured = getattr(settings, "QUANZI_CHAT", {}) or {}
    return int(configured.get(name, DEFAULTS[name]))
