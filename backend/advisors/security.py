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
