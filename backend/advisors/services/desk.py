"""The manager's desk: internal notes, quick replies, product cards, office hours. Every use case acts only on
the manager's own customers (anyone else's is NOT_FOUND)."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Sequence
from typing import Any

from django.db import transaction

from backend.accounts.ids import user_gid
from backend.chat import services as chat_services
from backend.core import share_hooks
from backend.core.errors import NotFound, ValidationFailed
from backend.core.ids import encode_id

from .. import limits
from ..models import CustomerNote, CustomerRecord, ManagerProfile, Product, ProductShare, QuickReply
from ._base import clean_text, my_customer_record, require_manager

PRODUCT = "Product"


def add_note(*, manager: Any, customer_id: int, body: object) -> CustomerNote:
    """An internal note on one of my customers. Customers never see notes through any API."""
    record = my_customer_record(manager, customer_id)
    body = clean_text(body, field="body", max_chars=limits.get("NOTE_MAX_CHARS"))
    return CustomerNote.objects.create(customer_id=record.customer_id, author=manager, body=body)


TAGS_MAX = 20


def set_tags(*, manager: Any, customer_id: int, tags: Sequence[object]) -> CustomerRecord:
    """My labels for one of my customers (e.g. "retiree", "fund buyer"): shown to managers only."""
    record = my_customer_record(manager, customer_id)
    if not isinstance(tags, list | tuple) or len(tags) > TAGS_MAX:
        raise ValidationFailed(f"At most {TAGS_MAX} tags.", code="INVALID_TAGS", field="tags")
    clean = list(dict.fromkeys(clean_text(tag, field="tags", max_chars=20, line=True) for tag in tags))
    record.tags = clean
    record.save(update_fields=["tags"])
    return record


def create_quick_reply(*, manager: Any, title: object, text: object) -> QuickReply:
    require_manager(manager)
    title = clean_text(title, field="title", max_chars=64, line=True)
    text = clean_text(text, field="text", max_chars=2000)
    if QuickReply.objects.filter(manager=manager).count() >= limits.get("QUICK_REPLIES_MAX"):
        raise ValidationFailed("Too many quick replies.", code="TOO_MANY_QUICK_REPLIES", field="title")
    return QuickReply.objects.create(manager=manager, title=title, text=text)


def delete_quick_reply(*, manager: Any, quick_reply: QuickReply) -> None:
    if quick_reply.manager_id != manager.pk:
        raise NotFound(field="quickReplyId")
    quick_reply.delete()


def send_quick_reply(*, manager: Any, customer_id: int, quick_reply: QuickReply,
                     client_msg_id: str) -> chat_services.SendResult:
    """Send one of my quick replies to one of my customers, as an ordinary message from me."""
    if quick_reply.manager_id != manager.pk:
        raise NotFound(field="quickReplyId")
    record = my_customer_record(manager, customer_id)
    return chat_services.send_message(conversation_id=record.conversation_id, sender=manager,
                                      client_msg_id=client_msg_id, text=quick_reply.text)


def product_card(product: Product, *, shared_by: int | None = None, extra: dict | None = None) -> dict:
    """The card a product travels as: everything a client shows, and the id to open it by (plus what
    core.share_hooks listeners add to a shared card, e.g. the sharer's referral code)."""
    card = {**(extra or {}),
        "kind": "product", "owner": "advisors", "product_id": encode_id(PRODUCT, product.pk), "title": product.name,
        "product_type": product.kind, "risk_level": f"R{product.risk_level}",
        "expected_yield_bps": product.expected_yield_bps, "min_amount": product.min_amount,
        "detail_url": product.detail_url,
    }
    if shared_by is not None:
        card["shared_by"] = user_gid(shared_by)
    return card


def send_product_card(*, manager: Any, customer_id: int, product: Product,
                      client_msg_id: str) -> chat_services.SendResult:
    if not product.active:
        raise NotFound(field="productId")
    record = my_customer_record(manager, customer_id)
    return chat_services.post_card(conversation_id=record.conversation_id, sender=manager,
                                   client_msg_id=client_msg_id, card=product_card(product))


def share_product(*, user: Any, product: Product, conversation_id: int,
                  client_msg_id: str) -> chat_services.SendResult:
    """Anyone passes a product card on into a conversation they are in; the share is recorded (sharer,
    product, message) and reported to core.share_hooks, so a referral program counts it on the sharer's code
    and tracks it to a result (the code travels on the card). A replay (same client message id) counts once."""
    if not product.active:
        raise NotFound(field="productId")
    try:
        with transaction.atomic():
            extra = share_hooks.product_shared(share_hooks.ProductShare(
                sharer_id=user.pk, product_id=product.pk, conversation_id=conversation_id))
            result = chat_services.post_card(conversation_id=conversation_id, sender=user,
                                             client_msg_id=client_msg_id,
                                             card=product_card(product, shared_by=user.pk, extra=extra))
            if not result.created:
                raise _Replayed(result)  # undo what the listeners counted
            ProductShare.objects.create(product=product, sharer=user, conversation_id=conversation_id,
                                        message_id=result.message.pk,
                                        referral_code=str(extra.get("referral_code", ""))[:16])
    except _Replayed as replay:
        return replay.result
    return result


class _Replayed(Exception):
    def __init__(self, result: chat_services.SendResult):
        self.result = result


def set_office_hours(*, manager: Any, days: Sequence[int], opens: dt.time, closes: dt.time, timezone: str,
                     away_message: object = "") -> ManagerProfile:
    """When I answer; outside these hours my customers get one automatic reply per closed window."""
    require_manager(manager)
    if not days or not all(isinstance(d, int) and 0 <= d <= 6 for d in days):
        raise ValidationFailed("Days are 0 (Monday) to 6 (Sunday).", code="INVALID_OFFICE_HOURS", field="days")
    if not opens < closes:
        raise ValidationFailed("Opening time must be before closing time.", code="INVALID_OFFICE_HOURS",
                               field="opens")
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValidationFailed("Unknown time zone.", code="INVALID_OFFICE_HOURS", field="timezone") from exc
    away = clean_text(away_message or "", field="awayMessage", max_chars=500, required=False)
    profile = ManagerProfile.objects.filter(user=manager).first()
    if profile is None:
        raise NotFound(field="managerId")
    profile.office_days, profile.office_opens, profile.office_closes = sorted(set(days)), opens, closes
    profile.timezone, profile.away_message = timezone, away
    profile.save(update_fields=["office_days", "office_opens", "office_closes", "timezone", "away_message"])
    return profile


