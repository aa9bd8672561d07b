"""Checks on untyped input (socket frames, service arguments) shared by every app."""

from __future__ import annotations


def is_int(value: object, *, minimum: int | None = None) -> bool:
    """A real integer (JSON `true` is a bool, and bool is an int in Python: refuse it), at least `minimum`."""
    return isinstance(value, int) and not isinstance(value, bool) and (minimum is None or value >= minimum)
