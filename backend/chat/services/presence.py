"""Telling co-members that a user came online or went away."""

from __future__ import annotations

import datetime as dt

from backend.core import presence

from .. import events, selectors


def announce_presence(*, user_id: int, online: bool) -> None:
    """Tell co-members with a live socket (of small conversations) that this user came online or left."""
    audience = selectors.presence_audience(user_id)
    listening = presence.online_among(audience) if audience else set()
    if not listening:
        return
    seen = presence.last_seen(user_id)
    frame = {"type": "presence", "user_id": events.user_gid(user_id), "online": online,
             "last_seen": dt.datetime.fromtimestamp(seen, dt.UTC).isoformat() if seen else None}
    events.ring_users_now(listening, {"type": "client.event", "frame": frame})
