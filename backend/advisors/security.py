"""Security notices from the "Security" service account.

notifications already turns accounts' security events (new-device sign-in, password changed, signed out
everywhere) into `system` notices. The same text is also posted, in the same transaction, as a message from the
security service account (when operations created one): the verified sender the customer sees in chat, which
nobody can unsubscribe from and no customer can imitate.
"""

from __future__ import annotations

import logging
import secrets

from django.db import transaction

from backend.core import realtime
from backend.notifications.security import NOTICES

from . import services

log = logging.getLogger("quanzi.advisors")


def on_security_event(sender, *, user_id: int, event: str, details: dict, **kwargs) -> None:
    account = services.security_account()
    if account is None or event not in NOTICES:
        return
    title, body = NOTICES[event]
    values = {"device": details.get("device_name") or details.get("platform") or "a new device", **details}
    try:
        with transaction.atomic():  # a savepoint: the notice in chat must never undo the sign-in it reports
            services.post_notice(account=account, user_id=user_id, key=f"security:{secrets.token_hex(16)}",
                                 text=f"{title}\n{body.format(**values)}")
    except Exception:
        log.exception("security notice for user %s could not be posted from the security account", user_id)


# Money events whose notice the Security account also posts (wallet writes them through notifications.notify;
# advisors does not import wallet, it hears notifications' `notification_recorded`).
MONEY_ALERT_EVENTS = frozenset({"wallet.balance_changed"})


def on_notification_recorded(sender, *, notification, **kwargs) -> None:
    """A balance-change alert is also posted from the Security account, after the money movement commits (in
    its own transaction), so a failure to post can never undo or block the movement it reports. The alerts of
    one transaction (a transfer alerts both wallets) share one after-commit call and one account lookup."""
    if notification.event not in MONEY_ALERT_EVENTS:
        return
    text = f"{notification.title}\n{notification.body}".strip()
    realtime.on_commit_batched("advisors.balance_notices", _post_balance_notices,
                               (notification.recipient_id, notification.pk, text))


def _post_balance_notices(items: list[tuple[int, int, str]]) -> None:
    # Most movements meet no Security account (none created): one small id lookup, then nothing. Only when
    # there is one is it loaded with its user (the sender in chat).
    if services.security_account_id() is None:
        return
    account = services.security_account()
    if account is None:  # deleted in between
        return
    for user_id, notice_id, text in items:
        try:
            with transaction.atomic():
                services.post_notice(account=account, user_id=user_id, key=f"balance:{notice_id}", text=text)
        except Exception:
            log.exception("balance alert %s for user %s could not be posted from the security account",
                          notice_id, user_id)
