"""好友转账 Friend transfers: the money goes on hold and a card appears; the recipient accepts (the hold is
posted) or declines (voided); unaccepted after 24 hours a scan refunds it (voids the hold), exactly once.

Accept, decline and the refund scan all lock the transfer row first, so whichever commits first decides and
the others see a resolved transfer: money moves once (the wallet's hold refuses a second resolution too).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.db.models import Sum

from backend.chat.models import Conversation
from backend.core import activity_hooks, clock
from backend.core.errors import NotFound, ValidationFailed
from backend.core.ids import encode_id
from backend.core.values import is_int
from backend.wallet import risk
from backend.wallet import services as wallet
from backend.wallet.money import format_fen

from ..limits import payments_setting
from ..models import FriendTransfer
from ._common import (
    AlreadyResolved,
    NotParticipant,
    WrongConversationKind,
    active_member_ids,
    client_key,
    conversation_of_member,
    count_money_action,
    create_once,
    gid,
    is_member,
    post_card,
    tell,
    update_card,
)

TYPE = "FriendTransfer"


class DailyLimitExceeded(ValidationFailed):
    code = "DAILY_LIMIT_EXCEEDED"
    default_message = "This transfer would exceed today's limit for your verification level."


class TransferExpired(AlreadyResolved):
    code = "TRANSFER_EXPIRED"
    default_message = "This transfer was not accepted in time and is being refunded."


def card_state(transfer: FriendTransfer) -> dict:
    return {"status": transfer.status, "amount": transfer.amount, "note": transfer.note,
            "from": gid(transfer.sender_id), "to": gid(transfer.recipient_id),
            "expires_at": transfer.expires_at.isoformat(),
            "resolved_at": transfer.resolved_at.isoformat() if transfer.resolved_at else None}


def _recipient(conversation: Conversation, sender: Any, recipient_id: object) -> int:
    members = active_member_ids(conversation.pk) - {sender.pk}
    if conversation.kind == Conversation.Kind.DIRECT and recipient_id is None and len(members) == 1:
        return next(iter(members))
    if conversation.kind not in (Conversation.Kind.DIRECT, Conversation.Kind.GROUP, Conversation.Kind.CIRCLE):
        raise WrongConversationKind(field="conversationId")
    if recipient_id == sender.pk:
        raise wallet.SelfTransfer(field="recipientId")
    if not is_int(recipient_id) or recipient_id not in members:
        raise NotFound("The recipient is not in this conversation.", field="recipientId")
    return recipient_id


def sent_today(sender_id: int) -> int:
    """What the sender committed in friend transfers today (UTC); declined and refunded ones do not count."""
    start = clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
    return FriendTransfer.objects.filter(
        sender_id=sender_id, created_at__gte=start,
        status__in=[FriendTransfer.Status.PENDING, FriendTransfer.Status.ACCEPTED],
    ).aggregate(total=Sum("amount"))["total"] or 0


def _check_daily_limit(sender: Any, amount: int) -> None:
    table = payments_setting("TRANSFER_DAILY_LIMIT_BY_KYC")
    limit = table.get(sender.kyc_level, table.get(str(sender.kyc_level), 0))
    if sent_today(sender.pk) + amount > limit:
        raise DailyLimitExceeded(f"Today's limit at your verification level is {format_fen(limit)}.",
                                 field="amount")


def send_transfer(*, sender: Any, conversation_id: object, amount: object, idempotency_key: object,
                  recipient_id: object = None, note: object = "", risk_confirmation: object = None,
                  ) -> tuple[FriendTransfer, bool]:
    """Send money to a member of the conversation; it waits on hold until they accept. (transfer, replayed)"""
    key = client_key(idempotency_key)
    return create_once(FriendTransfer, {"sender": sender, "idempotency_key": key}, lambda: _send(
        sender=sender, conversation_id=conversation_id, amount=amount, key=key, recipient_id=recipient_id,
        note=note, risk_confirmation=risk_confirmation))


def _send(*, sender: Any, conversation_id: object, amount: object, key: str, recipient_id: object, note: object,
          risk_confirmation: object) -> FriendTransfer:
    count_money_action(sender)
    amount = wallet.validate_amount(amount)
    note = wallet.clean_memo(note)
    conversation = conversation_of_member(conversation_id, sender.pk)
    recipient = _recipient(conversation, sender, recipient_id)
    risk.check_payee(payer_id=sender.pk, payee_id=recipient, amount=amount, confirmation=risk_confirmation)
    now = clock.now()
    source = wallet.ensure_wallet(user_id=sender.pk)
    destination = wallet.ensure_wallet(user_id=recipient)
    wallet.lock_accounts([source.pk])  # one sender at a time: the daily sum cannot be raced past
    _check_daily_limit(sender, amount)
    transfer = FriendTransfer.objects.create(
        conversation=conversation, sender=sender, recipient_id=recipient, amount=amount, note=note,
        idempotency_key=key, created_at=now,
        expires_at=now + dt.timedelta(hours=payments_setting("TRANSFER_EXPIRY_HOURS")),
    )
    transfer.hold = wallet.place_hold(
        source_id=source.pk, destination_id=destination.pk, amount=amount, kind="friend_transfer",
        idempotency_key=f"payments:transfer:{transfer.pk}:hold", memo=note or "转账 Transfer",
        initiated_by_id=sender.pk,
    ).hold
    transfer.save(update_fields=["hold"])
    post_card(transfer, sender=sender, kind="transfer", id_field="transfer_id", type_name=TYPE,
              title="转账", state=card_state(transfer))
    tell([recipient], event="payments.transfer_received", title="收到转账",
         body=f"{sender.display_name} 向你转账 {format_fen(amount)}，请在 24 小时内确认收款。",
         payload={"id": encode_id(TYPE, transfer.pk)}, conversation_id=conversation.pk)
    return transfer


def _locked_for_recipient(user: Any, transfer_id: int) -> FriendTransfer:
    transfer = FriendTransfer.objects.select_for_update().filter(pk=transfer_id).first()
    if transfer is None or not is_member(transfer.conversation_id, user.pk):
        raise NotFound(field="transferId")  # strangers, and people who left the conversation
    if user.pk != transfer.recipient_id:
        raise NotParticipant("Only the recipient can accept or decline.", field="transferId")
    if transfer.status != FriendTransfer.Status.PENDING:
        raise AlreadyResolved(field="transferId")
    if clock.now() >= transfer.expires_at:
        raise TransferExpired(field="transferId")
    return transfer


def _resolve(transfer: FriendTransfer, status: str, *, event: str, title: str, body: str) -> FriendTransfer:
    transfer.status, transfer.resolved_at = status, clock.now()
    transfer.save(update_fields=["status", "resolved_at", "entry"])
    update_card(transfer, card_state(transfer))
    tell([transfer.sender_id], event=event, title=title, body=body,
         payload={"id": encode_id(TYPE, transfer.pk)}, conversation_id=transfer.conversation_id)
    return transfer


def accept_transfer(*, user: Any, transfer_id: int) -> FriendTransfer:
    """The recipient takes the money: the hold is posted to their wallet."""
    count_money_action(user)
    with transaction.atomic():
        transfer = _locked_for_recipient(user, transfer_id)
        transfer.entry = wallet.post_hold(hold_id=transfer.hold_id,
                                          idempotency_key=f"payments:transfer:{transfer.pk}:accept").entry
        activity_hooks.report_activity(user_id=transfer.sender_id, kind="transfer", amount=transfer.amount,
                                       reference=f"wallet:entry:{transfer.entry.pk}",
                                       occurred_at=transfer.entry.created_at)
        return _resolve(transfer, FriendTransfer.Status.ACCEPTED, event="payments.transfer_accepted",
                        title="转账已收款", body=f"对方已收款 {format_fen(transfer.amount)}。")


def decline_transfer(*, user: Any, transfer_id: int) -> FriendTransfer:
    """The recipient refuses: the hold is voided and the money is the sender's to spend again at once."""
    with transaction.atomic():
        transfer = _locked_for_recipient(user, transfer_id)
        wallet.void_hold(hold_id=transfer.hold_id, idempotency_key=f"payments:transfer:{transfer.pk}:decline")
        return _resolve(transfer, FriendTransfer.Status.DECLINED, event="payments.transfer_declined",
                        title="转账已退回", body=f"对方已退还 {format_fen(transfer.amount)}。")


def expire_transfers(*, limit: int = 200) -> int:
    """Refund transfers not accepted in time, exactly once each (idempotent). Returns how many."""
    due = list(FriendTransfer.objects.filter(status=FriendTransfer.Status.PENDING, expires_at__lte=clock.now())
               .order_by("id").values_list("pk", flat=True)[:limit])
    done = 0
    for transfer_id in due:
        with transaction.atomic():
            transfer = FriendTransfer.objects.select_for_update().get(pk=transfer_id)
            if transfer.status != FriendTransfer.Status.PENDING:
                continue  # accepted or declined meanwhile
            wallet.void_hold(hold_id=transfer.hold_id, idempotency_key=f"payments:transfer:{transfer.pk}:expire")
            _resolve(transfer, FriendTransfer.Status.REFUNDED, event="payments.transfer_refunded",
                     title="转账已退回", body=f"对方 24 小时内未收款，{format_fen(transfer.amount)} 已退回。")
            done += 1
    return done
