"""Broadcasts: a manager or operations user sends one message to a tier, a circle or a list of users,
delivered as service-account messages.

Audience: a tier (customers whose computed tier it is), a circle (the active members of its circle
conversation in chat — advisors does not import circles), or a list of users. A client manager's audience is
always cut down to their own customers; operations staff reach anyone. Each user gets a broadcast at most once
(`BroadcastDelivery` is unique per broadcast and user) and at most `BROADCAST_CAP` broadcasts in any
`BROADCAST_CAP_WINDOW_HOURS` (the frequency cap, counted over every broadcast they received); users who
unsubscribed from a marketing account are skipped. Delivery runs in a Celery task and is idempotent, so a
retried or repeated run finishes the job without sending anything twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.db.models import Count

from backend.chat import selectors as chat_selectors
from backend.core import clock
from backend.core.errors import NotFound, ValidationFailed

from .. import limits
from ..models import (
    Assignment,
    Broadcast,
    BroadcastDelivery,
    CustomerRecord,
    Product,
    ServiceAccount,
    Subscription,
)
from ._base import User, clean_text, require_manager_or_operations
from .desk import product_card
from .service_accounts import Unsubscribed, post_notice

Target = Broadcast.Target


def create_broadcast(*, sender: Any, account: ServiceAccount, text: object, target: str, tier: str = "",
                     circle_conversation_id: int | None = None, user_ids: Sequence[int] = (),
                     product: Product | None = None) -> Broadcast:
    """Record a broadcast and queue its delivery (after commit)."""
    require_manager_or_operations(sender)
    if account.category == ServiceAccount.Category.SECURITY:
        raise ValidationFailed("The security account sends security notices only.", code="INVALID_SENDER",
                               field="serviceAccountId")
    text = clean_text(text, field="text", max_chars=2000)
    if target == Target.TIER:
        if tier not in CustomerRecord.Tier.values:
            raise ValidationFailed("Unknown tier.", code="INVALID_TARGET", field="tier")
    elif target == Target.CIRCLE:
        if circle_conversation_id is None or not chat_selectors.is_circle_conversation(circle_conversation_id):
            raise NotFound(field="circleConversationId")
    elif target == Target.LIST:
        user_ids = list(dict.fromkeys(user_ids))
        if not user_ids or len(user_ids) > limits.get("BROADCAST_MAX_LIST"):
            raise ValidationFailed(f"Name 1 to {limits.get('BROADCAST_MAX_LIST')} users.", code="INVALID_TARGET",
                                   field="userIds")
    else:
        raise ValidationFailed("Unknown target.", code="INVALID_TARGET", field="target")
    if product is not None and not product.active:
        raise NotFound(field="productId")
    with transaction.atomic():
        broadcast = Broadcast.objects.create(
            sender=sender, service_account=account, text=text, product=product, target=target,
            target_tier=tier if target == Target.TIER else "", target_conversation_id=circle_conversation_id,
            target_user_ids=list(user_ids) if target == Target.LIST else [])
        from ..tasks import deliver_broadcast

        transaction.on_commit(lambda: deliver_broadcast.delay(broadcast.pk))
    return broadcast


def audience_of(broadcast: Broadcast) -> list[int]:
    """The user ids a broadcast is meant for (before caps and unsubscriptions), ascending."""
    if broadcast.target == Target.TIER:
        ids = set(CustomerRecord.objects.filter(tier=broadcast.target_tier).values_list("customer_id", flat=True))
    elif broadcast.target == Target.CIRCLE:
        ids = set(chat_selectors.active_member_ids(broadcast.target_conversation_id))
    else:
        ids = set(broadcast.target_user_ids)
    people = User.objects.filter(pk__in=ids, is_active=True, role=User.Role.CUSTOMER)
    sender = broadcast.sender
    if sender is None or not sender.is_staff:  # a manager reaches only their own customers
        mine = Assignment.objects.filter(manager_id=broadcast.sender_id, ended_at__isnull=True)
        people = people.filter(pk__in=mine.values("customer_id"))
    return sorted(people.values_list("pk", flat=True))


def deliver_broadcast(*, broadcast_id: int) -> Broadcast:
    """Send a broadcast to everyone in its audience who is not capped or unsubscribed. Safe to run again."""
    broadcast = Broadcast.objects.select_related("service_account__user", "sender", "product").get(pk=broadcast_id)
    audience = audience_of(broadcast)
    already = set(BroadcastDelivery.objects.filter(broadcast=broadcast).values_list("user_id", flat=True))
    todo = [uid for uid in audience if uid not in already]
    unsubscribed = set(Subscription.objects.filter(service_account=broadcast.service_account, user_id__in=todo,
                                                   unsubscribed_at__isnull=False).values_list("user_id", flat=True))
    since = clock.now() - dt.timedelta(hours=limits.get("BROADCAST_CAP_WINDOW_HOURS"))
    received = dict(BroadcastDelivery.objects.filter(user_id__in=todo, delivered_at__gt=since)
                    .values("user_id").annotate(n=Count("id")).values_list("user_id", "n"))
    cap = limits.get("BROADCAST_CAP")
    card = product_card(broadcast.product) if broadcast.product_id else None
    capped = 0
    for uid in todo:
        if uid in unsubscribed:
            continue
        if received.get(uid, 0) >= cap:
            capped += 1
            continue
        try:
            with transaction.atomic():
                # The recipient's row lock makes the cap hold when several broadcasts reach them at once: the
                # count above was a cheap pre-filter; this one, under the lock, is the one that decides.
                User.objects.select_for_update().filter(pk=uid).first()
                if BroadcastDelivery.objects.filter(broadcast=broadcast, user_id=uid).exists():
                    continue  # a concurrent run of this broadcast got here first
                if BroadcastDelivery.objects.filter(user_id=uid, delivered_at__gt=since).count() >= cap:
                    capped += 1
                    continue
                result = post_notice(account=broadcast.service_account, user_id=uid,
                                     key=f"broadcast:{broadcast.pk}:{uid}", text=broadcast.text, card=card)
                BroadcastDelivery.objects.create(broadcast=broadcast, user_id=uid, seq=result.message.seq,
                                                 conversation_id=result.message.conversation_id)
        except Unsubscribed:  # turned off while we were sending
            unsubscribed.add(uid)
    broadcast.audience_count = len(audience)
    broadcast.delivered_count = BroadcastDelivery.objects.filter(broadcast=broadcast).count()
    broadcast.capped_count = capped
    broadcast.unsubscribed_count = len(unsubscribed)
    broadcast.status, broadcast.sent_at = Broadcast.Status.SENT, clock.now()
    broadcast.save(update_fields=["audience_count", "delivered_count", "capped_count", "unsubscribed_count", "status",
                                  "sent_at"])
    return broadcast
