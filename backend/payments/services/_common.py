"""What every payments use case shares: errors, membership checks, cards, keys and notifications."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from django.db import IntegrityError, transaction

from backend.accounts.ids import user_gid
from backend.chat import services as chat_services
from backend.chat.models import Conversation, Membership
from backend.core import ratelimit
from backend.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from backend.core.ids import encode_id
from backend.notifications.services import notify
from backend.wallet import services as wallet_services

from ..limits import payments_setting

OWNER = "payments"  # the card owner chat checks in update_card
T = TypeVar("T")


class NotParticipant(PermissionDenied):
    code = "NOT_PARTICIPANT"
    default_message = "Only the people this concerns can do that."


class WrongConversationKind(ValidationFailed):
    code = "CONVERSATION_KIND_NOT_SUPPORTED"
    default_message = "This kind of conversation does not support that."


class AlreadyResolved(Conflict):
    code = "ALREADY_RESOLVED"
    default_message = "This was already settled."


def client_key(value: object) -> str:
    """The caller's idempotency key (same rule as the wallet's phone keys)."""
    if not isinstance(value, str) or not wallet_services.PUBLIC_KEY_RE.match(value):
        raise wallet_services.IdempotencyKeyInvalid(field="idempotencyKey")
    return value


def create_once(model: type[T], lookup: dict, create: Callable[[], T]) -> tuple[T, bool]:
    """Idempotent creation by the caller's key: (the object, replayed). A replay returns the first object
    without re-validating; `create` (validation, then the writes) runs in one transaction, and when the same
    key races in twice the unique constraint lets one win and the other returns the winner's object."""
    existing = model.objects.filter(**lookup).first()
    if existing is not None:
        return existing, True
    try:
        with transaction.atomic():
            return create(), False
    except IntegrityError:
        existing = model.objects.filter(**lookup).first()
        if existing is None:
            raise
        return existing, True


def count_money_action(user: Any) -> None:
    ratelimit.hit("payments-money", str(user.pk), limit=payments_setting("MONEY_ACTIONS_PER_MINUTE"),
                  window_seconds=60)


def conversation_of_member(conversation_id: object, user_id: int) -> Conversation:
    """The conversation, if the user is an active member; otherwise NOT_FOUND (strangers learn nothing)."""
    if not isinstance(conversation_id, int):
        raise NotFound(field="conversationId")
    conversation = Conversation.objects.filter(
        pk=conversation_id, memberships__user_id=user_id, memberships__left_at__isnull=True).first()
    if conversation is None:
        raise NotFound(field="conversationId")
    return conversation


def is_member(conversation_id: int, user_id: int) -> bool:
    return Membership.objects.filter(conversation_id=conversation_id, user_id=user_id,
                                     left_at__isnull=True).exists()


def active_member_ids(conversation_id: int) -> set[int]:
    return set(Membership.objects.filter(conversation_id=conversation_id, left_at__isnull=True)
               .values_list("user_id", flat=True))


def post_card(obj: Any, *, sender: Any, kind: str, id_field: str, type_name: str, title: str,
              state: dict, service: bool = False) -> None:
    """Post the object's card in its conversation (inside the caller's transaction) and remember it.
    `service`: the platform's own sender in a service conversation (no per-person send limit)."""
    card = {"kind": kind, "owner": OWNER, id_field: encode_id(type_name, obj.pk), "title": title, "state": state}
    post = chat_services.post_service_notice if service else chat_services.post_card
    result = post(conversation_id=obj.conversation_id, sender=sender, client_msg_id=f"payments:{kind}:{obj.pk}",
                  card=card)
    obj.message = result.message
    obj.card_version = result.message.card_version
    obj.save(update_fields=["message", "card_version"])


def update_card(obj: Any, state: dict) -> None:
    """Write the object's new card state; the caller holds the object's row lock (one writer per card)."""
    if obj.message_id is None:
        return
    message = chat_services.update_card(message_id=obj.message_id, owner=OWNER, state=state,
                                        expected_version=obj.card_version)
    obj.card_version = message.card_version
    type(obj).objects.filter(pk=obj.pk).update(card_version=obj.card_version)


def tell(user_ids: Any, *, event: str, title: str, body: str, payload: dict, conversation_id: int) -> None:
    """A money notification to each user concerned (balance alerts come from the ledger separately)."""
    for uid in dict.fromkeys(user_ids):
        notify(recipient_id=uid, kind="money", event=event, title=title, body=body, payload=payload,
               conversation_id=conversation_id, collapse_key=f"payments:{event}:{payload.get('id', '')}")


def gid(user_id: int | None) -> str | None:
    return user_gid(user_id)
