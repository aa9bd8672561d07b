"""The one clock every service reads.

Tests and management commands move it ("run due jobs as of a date") without patching datetime.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator

from django.utils import timezone

_offset = dt.timedelta(0)
_frozen: dt.datetime | None = None


def now() -> dt.datetime:
    if _frozen is not None:
        return _frozen
    return timezone.now() + _offset


def advance(delta: dt.timedelta) -> None:
    """Move the clock forward for the rest of the process (used by `manage.py` commands)."""
    global _offset, _frozen
    if _frozen is not None:
        _frozen = _frozen + delta
    else:
        _offset += delta


def reset() -> None:
    global _offset, _frozen
    _offset = dt.timedelta(0)
    _frozen = None


@contextlib.contextmanager
def frozen_at(moment: dt.datetime) -> Iterator[None]:
    global _frozen
    previous = _frozen
    _frozen = moment
    try:
        yield
    finally:
        _frozen = previous


@contextlib.contextmanager
def shifted(delta: dt.timedelta) -> Iterator[None]:
    global _offset
    previous = _offset
    _offset = _offset + delta
    try:
        yield
    finally:
        _offset = previous
