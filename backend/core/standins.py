"""Development stand-ins (console SMS, logging push, sandbox bank, demo data) in a production process.

With DEBUG off (outside tests) each one must be opted in to by its own environment variable; the process
refuses to start otherwise, and says so loudly on stderr when it was opted in. Pure: settings.py imports it
before Django is configured.
"""

from __future__ import annotations

import sys

from django.core.exceptions import ImproperlyConfigured


def guard_stand_in(name: str, *, in_use: bool, allowed: bool, what: str, development: bool) -> None:
    """`development` is DEBUG or tests (stand-ins are the point there). Otherwise refuse unless `name`=1."""
    if not in_use or development:
        return
    if not allowed:
        raise ImproperlyConfigured(f"Refusing to start with DEBUG off: {what}. Configure the real service, "
                                   f"or opt in explicitly with {name}=1 (staging only).")
    print(f"WARNING: {name}=1: {what}. Never in production.", file=sys.stderr, flush=True)
