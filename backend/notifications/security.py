"""Security notices: accounts announces sign-ins on a new device, password changes and sign-out everywhere
(backend.accounts.signals); each becomes a `system` notice, which cannot be muted and ignores quiet hours —
they come from the bank's side, like balance alerts."""

from __future__ import annotations

from backend.accounts import signals

from .services import notify

NOTICES = {
    signals.NEW_DEVICE_SIGN_IN: (
        "新设备登录 New sign-in",
        "Your account was just signed in on {device}. If this was not you, change your password and sign out "
        "everywhere.",
    ),
    signals.PASSWORD_CHANGED: (
        "密码已修改 Password changed",
        "Your password was changed; {devices_signed_out} other device(s) were signed out. If this was not you, "
        "call the bank at once.",
    ),
    signals.SIGNED_OUT_EVERYWHERE: (
        "已在所有设备退出 Signed out everywhere",
        "All {devices_signed_out} device(s) were signed out of your account.",
    ),
}


def on_security_event(sender, *, user_id: int, event: str, details: dict, **kwargs) -> None:
    """Write the notice in the transaction that made the change (so it exists exactly when the change does)."""
    title, body = NOTICES[event]
    values = {"device": details.get("device_name") or details.get("platform") or "a new device", **details}
    notify(recipient_id=user_id, kind="system", event=event, title=title, body=body.format(**values),
           payload={key: value for key, value in details.items() if key == "devices_signed_out"})


def connect() -> None:
    signals.security_event.connect(on_security_event, dispatch_uid="notifications.security_notice")
