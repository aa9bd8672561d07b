"""Service accounts (服务号): named, verified senders that post notices and cards to subscribers.

Users are subscribed on the first notice they are sent (the bank's own channels, like its SMS today) and may
unsubscribe from marketing accounts only; security and service accounts (login alerts, account notices) keep
reaching everyone. An unsubscribed user gets nothing more from that account until they subscribe again.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from django.db import IntegrityError, connection, transaction

from backend.chat import services as chat_services
from backend.core import clock
from backend.core.compiled import CompiledQuery
from backend.core.errors import Conflict, NotFound

from ..models import ServiceAccount, Subscription
from ._base import User, clean_text


class CannotUnsubscribe(Conflict):
    code = "CANNOT_UNSUBSCRIBE"
    default_message = "Security and service notices cannot be turned off."


class Unsubscribed(Conflict):
    code = "UNSUBSCRIBED"
    default_message = "The user unsubscribed from this service account."


def create_service_account(*, slug: str, name: str, category: str, description: str = "") -> ServiceAccount:
    """Operations: a new sender. Its user row has no phone number (nobody can sign in as it) and carries the
    verified badge (role service_account)."""
    if category not in ServiceAccount.Category.values:
        raise ValueError(f"unknown category {category!r}")
    name = clean_text(name, field="name", max_chars=64, line=True)
    with transaction.atomic():
        user = User(display_name=name, role=User.Role.SERVICE_ACCOUNT, phone="",
                    phone_index=f"service:{slug}:{secrets.token_hex(8)}"[:64])
        user.set_unusable_password()
        user.save()
        return ServiceAccount.objects.create(slug=slug, user=user, category=category, description=description)


def _subscription(account: ServiceAccount, user_id: int) -> Subscription:
    existing = Subscription.objects.filter(service_account=account, user_id=user_id).first()
    if existing is not None:
        return existing
    conversation = chat_services.open_service_conversation(service_account_id=account.user_id,
                                                           subscriber_id=user_id, title=account.user.display_name)
    try:
        with transaction.atomic():
            return Subscription.objects.create(service_account=account, user_id=user_id, conversation=conversation)
    except IntegrityError:
        return Subscription.objects.get(service_account=account, user_id=user_id)


def subscribe(*, user: Any, account: ServiceAccount) -> Subscription:
    subscription = _subscription(account, user.pk)
    if subscription.unsubscribed_at is not None:
        subscription.unsubscribed_at = None
        subscription.save(update_fields=["unsubscribed_at"])
    return subscription


def unsubscribe(*, user: Any, account: ServiceAccount) -> Subscription:
    """Marketing accounts only: security (login and balance alerts) and service notices always arrive."""
    if not account.may_unsubscribe:
        raise CannotUnsubscribe(field="serviceAccountId")
    subscription = _subscription(account, user.pk)
    if subscription.unsubscribed_at is None:
        subscription.unsubscribed_at = clock.now()
        subscription.save(update_fields=["unsubscribed_at"])
    return subscription


def post_notice(*, account: ServiceAccount, user_id: int, key: str, text: str = "",
                card: dict | None = None) -> chat_services.SendResult:
    """A notice (text or card) from a service account to one user, idempotent by `key`. Refused with
    UNSUBSCRIBED for a user who turned a marketing account off."""
    subscription = _subscription(account, user_id)
    if not subscription.active:
        raise Unsubscribed(field="userId")
    return chat_services.post_service_notice(conversation_id=subscription.conversation_id, sender=account.user,
                                             client_msg_id=key[:64], text=text, card=card)


def security_account() -> ServiceAccount | None:
    return ServiceAccount.objects.select_related("user").filter(category=ServiceAccount.Category.SECURITY) \
        .order_by("id").first()


# Asked after every money movement (compiled once per process, core.compiled) and remembered for a few seconds:
# the answer changes about once in the system's life, and the question was a round trip per movement (~10 % of
# a transfer's CPU). This process forgets it as soon as a service account is saved or deleted here
# (`forget_security_account`, connected in apps.py); another node hears of a new account within the TTL.
_SECURITY_ACCOUNT_ID = CompiledQuery(
    lambda: ServiceAccount.objects.filter(category=ServiceAccount.Category.SECURITY).order_by("id").values_list("id")[:1],
    prepared=True)
SECURITY_ACCOUNT_TTL_SECONDS = 10.0
_security_account_known: tuple[float, int | None] | None = None  # (monotonic expiry, id)


def security_account_id() -> int | None:
    """The Security account's id, or None when operations created none (then no notice is posted)."""
    global _security_account_known
    known = _security_account_known
    if known is not None and known[0] > time.monotonic():
        return known[1]
    rows = _SECURITY_ACCOUNT_ID.rows(connection)
    found = rows[0][0] if rows else None
    _security_account_known = (time.monotonic() + SECURITY_ACCOUNT_TTL_SECONDS, found)
    return found


def forget_security_account(sender=None, **kwargs) -> None:  # noqa: ANN001 - a signal receiver
    """A service account was saved or deleted: the next movement asks the database again."""
    global _security_account_known
    _security_account_known = None


def account_by_slug(slug: str) -> ServiceAccount:
    account = ServiceAccount.objects.select_related("user").filter(slug=slug).first()
    if account is None:
        raise NotFound(field="serviceAccountId")
    return account
