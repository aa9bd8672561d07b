"""Development stand-ins (console SMS, logging push, sandbox bank, demo data) in a production process.

With DEBUG off (outside tests) each one must be opted in to by its own environment variable; the process
refuses to start otherwise, and says so loudly on stderr when it was opted in. Pure: settings.py imports it
before Django is configured.
"""

from __future__ import annotations

import base64
import secrets
import sys

from django.core.exceptions import ImproperlyConfigured

# Every start-up stand-in opted in: what staging, end-to-end tests and benchmarks run with (DEBUG off).
STAGING_OPT_INS = {"ALLOW_CONSOLE_SMS": "1", "ALLOW_LOGGING_PUSH": "1", "ALLOW_SANDBOX_GATEWAY": "1"}


def guard_stand_in(name: str, *, in_use: bool, allowed: bool, what: str, development: bool) -> None:
    """`development` is DEBUG or tests (stand-ins are the point there). Otherwise refuse unless `name`=1."""
    if not in_use or development:
        return
    if not allowed:
        raise ImproperlyConfigured(f"Refusing to start with DEBUG off: {what}. Configure the real service, "
                                   f"or opt in explicitly with {name}=1 (staging only).")
    print(f"WARNING: {name}=1: {what}. Never in production.", file=sys.stderr, flush=True)


def throwaway_secrets() -> dict[str, str]:
    """Fresh random secrets for a throwaway process tree (a test run, a benchmark): never the published
    development ones, so its processes can run with DEBUG off as production does."""
    return {
        "SECRET_KEY": "throwaway-" + secrets.token_urlsafe(48),
        "QUANZI_KEYS": "tmp1=" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "QUANZI_BLIND_INDEX_KEY": secrets.token_urlsafe(32),
    }
