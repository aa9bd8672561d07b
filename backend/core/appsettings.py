"""One rule for every app's tunables: `settings.QUANZI_<APP>[name]` beats the app's default, read at call time so
tests (and operators' settings overrides) can change it without a restart of the module."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings


def app_setting(settings_name: str, defaults: Mapping[str, Any], name: str) -> Any:
    """`settings.<settings_name>[name]` when set, else `defaults[name]` (a KeyError names a setting that does
    not exist)."""
    overrides = getattr(settings, settings_name, None) or {}
    return overrides.get(name, defaults[name])
