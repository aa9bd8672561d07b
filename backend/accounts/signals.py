"""Security events accounts announces. accounts sits below notifications, so it cannot write a notice itself:
it sends `security_event` in the transaction that made the change, and notifications (which may import
accounts) turns each event into a `system` notice, written in that same transaction."""

from __future__ import annotations

from django.dispatch import Signal

NEW_DEVICE_SIGN_IN = "accounts.new_device_sign_in"
PASSWORD_CHANGED = "accounts.password_changed"
SIGNED_OUT_EVERYWHERE = "accounts.signed_out_everywhere"
SECURITY_EVENTS = (NEW_DEVICE_SIGN_IN, PASSWORD_CHANGED, SIGNED_OUT_EVERYWHERE)

# Receivers get: user_id (int), event (one of SECURITY_EVENTS), details (dict of display-safe values).
security_event = Signal()


def announce(*, user_id: int, event: str, **details: object) -> None:
    """Tell listeners about a security event; call inside the transaction that made the change."""
    if event not in SECURITY_EVENTS:
        raise ValueError(f"unknown security event {event!r}")
    security_event.send(sender=announce, user_id=user_id, event=event, details=details)
