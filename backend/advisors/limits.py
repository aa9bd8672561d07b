"""Advisors limits: defaults here, overridable by ``settings.QUANZI_ADVISORS`` (read at call time)."""

from __future__ import annotations

from backend.core.appsettings import app_setting

DEFAULTS: dict[str, int] = {
    "BROADCAST_CAP": 3,  # at most this many broadcasts reach one user ...
    "BROADCAST_CAP_WINDOW_HOURS": 7 * 24,  # ... in any window this long
    "BROADCAST_MAX_LIST": 1000,  # users named in one list broadcast
    "NOTE_MAX_CHARS": 2000,
    "QUICK_REPLIES_MAX": 100,  # per manager
    "ACTIVITY_DAYS": 30,  # the tier rule's activity window
}


def get(name: str) -> int:
    return int(app_setting("QUANZI_ADVISORS", DEFAULTS, name))
