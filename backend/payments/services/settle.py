"""Settle up: the group balance across a conversation's open bills, and the fewest transfers that clear it.

``group_balances`` nets every unpaid share (participant owes the bill's creator). ``start_settlement``
freezes those shares to a new settle-up (so nobody pays them directly meanwhile) and plans the transfers
with ``rules.simplify_debts`` — at most members − 1. Each debtor then pays all their transfers in one tap
(``pay_settlement``): the money moves wallet to wallet and the debtor's own shares are marked paid. When the
last debtor has paid, every remaining share of the settle-up (those of members who were owed, or even) is
marked paid too and the bills complete. A settle-up nobody has paid into yet can be cancelled.

Locking: start locks the conversation's open bills (ascending id), then their shares; a direct share payment
locks its bill first too, so a settle-up and a manual payment of one share run one after the other and the
share is paid once. Paying locks the settle-up, then the bills, then the wallets, then the conversation.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db import IntegrityError, transaction

from backend.core import activity_hooks, clock
from backend.core.errors import Conflict, NotFound
from backend.core.ids import encode_id
from backend.wallet import risk
from backend.wallet import services as wallet
from backend.wallet.money import format_fen

from .. import rules
from ..limits import payments_setting
from ..models import Bill, Settlement, SettlementTransfer, Share
from ._common import (
    AlreadyResolved,
    NotParticipant,
    conversation_of_member,
    count_money_action,
    gid,
    is_member,
    post_card,
    tell,
    update_card,
)
from .bills import BILL_CONVERSATIONS, WrongConversationKind, finish_if_done
from .bills import card_state as bill_card_state

TYPE = "SettleUp"


class NothingToSettle(Conflict):
    code = "NOTHING_TO_SETTLE"
    default_message = "Nobody owes anybody anything on the open bills here."


class SettlementAlreadyOpen(Conflict):
    code = "SETTLEMENT_OPEN"
    default_message = "A settle-up is already under way in this conversation."


class SettlementStarted(Conflict):
    code = "SETTLEMENT_STARTED"
    default_message = "Someone has already paid into this settle-up; it can no longer be cancelled."


def _open_shares(conversation_id: int):
    return Share.objects.filter(bill__conversation_id=conversation_id, bill__status=Bill.Status.OPEN,
                                status=Share.Status.PENDING, settlement__isnull=True)


def group_balances(conversation_id: int) -> dict[int, int]:
    """What each member is owed (+) or owes (−) across the conversation's open bills, in fen. Sums to 0."""
    book: dict[int, int] = defaultdict(int)
    for creator, participant, amount in _open_shares(conversation_id).values_list(
            "bill__creator_id", "participant_id", "amount"):
        book[creator] += amount
        book[participant] -= amount
    return {uid: value for uid, value in book.items() if value}


def card_state(settlement: Settlement) -> dict:
    rows = settlement.transfers.order_by("id").values_list("debtor_id", "creditor_id", "amount", "status")
    return {"status": settlement.status,
            "transfers": [[gid(d), gid(c), amount, status]
                          for d, c, amount, status in list(rows)[:payments_setting("CARD_LIST_MAX")]]}


def start_settlement(*, user: Any, conversation_id: object) -> Settlement:
    """Plan the fewest transfers that clear every balance here, and freeze the shares they cover."""
    conversation = conversation_of_member(conversation_id, user.pk)
    if conversation.kind not in BILL_CONVERSATIONS:
        raise WrongConversationKind(field="conversationId")
    try:
        with transaction.atomic():
            list(Bill.objects.select_for_update().filter(conversation=conversation, status=Bill.Status.OPEN)
                 .order_by("id").values_list("pk", flat=True))
            if Settlement.objects.filter(conversation=conversation, status=Settlement.Status.OPEN).exists():
                raise SettlementAlreadyOpen(field="conversationId")
            shares = list(_open_shares(conversation.pk).select_for_update(of=("self",)).order_by("id"))
            plan = rules.simplify_debts(group_balances(conversation.pk))
            if not plan:
                raise NothingToSettle(field="conversationId")
            settlement = Settlement.objects.create(conversation=conversation, created_by=user)
            SettlementTransfer.objects.bulk_create([
                SettlementTransfer(settlement=settlement, debtor_id=p.debtor, creditor_id=p.creditor, amount=p.amount)
                for p in plan
            ])
            Share.objects.filter(pk__in=[s.pk for s in shares]).update(settlement=settlement)
            post_card(settlement, sender=user, kind="settle_up", id_field="settle_up_id", type_name=TYPE,
                      title="结清账单 Settle up", state=card_state(settlement))
            for payment in plan:
                tell([payment.debtor], event="payments.settle_up", title="结清账单",
                     body=f"一次支付 {format_fen(payment.amount)} 即可结清本群的AA账单。",
                     payload={"id": encode_id(TYPE, settlement.pk)}, conversation_id=conversation.pk)
            return settlement
    except IntegrityError as exc:  # another settle-up was opened at the same moment
        raise SettlementAlreadyOpen(field="conversationId") from exc


def _lock(settlement_id: int, user: Any) -> Settlement:
    settlement = Settlement.objects.select_for_update().filter(pk=settlement_id).first()
    if settlement is None or not is_member(settlement.conversation_id, user.pk):
        raise NotFound(field="settlementId")
    if settlement.status != Settlement.Status.OPEN:
        raise AlreadyResolved(field="settlementId")
    return settlement


def _bills_locked(settlement: Settlement) -> list[Bill]:
    ids = settlement.shares.values_list("bill_id", flat=True).distinct()
    return list(Bill.objects.select_for_update().filter(pk__in=list(ids)).order_by("id"))


def pay_settlement(*, user: Any, settlement_id: int, risk_confirmation: object = None) -> list[SettlementTransfer]:
    """Pay every transfer I owe in this settle-up at once; my shares it covers are then paid."""
    count_money_action(user)
    with transaction.atomic():
        settlement = _lock(settlement_id, user)
        mine = list(settlement.transfers.filter(debtor=user).order_by("id"))
        if not mine:
            raise NotParticipant("You owe nothing in this settle-up.", field="settlementId")
        if all(t.status == SettlementTransfer.Status.PAID for t in mine):
            return mine  # a retry
        for transfer in mine:
            risk.check_payee(payer_id=user.pk, payee_id=transfer.creditor_id, amount=transfer.amount,
                             confirmation=risk_confirmation)
        bills = _bills_locked(settlement)
        source = wallet.ensure_wallet(user_id=user.pk)
        targets = {t.creditor_id: wallet.ensure_wallet(user_id=t.creditor_id).pk for t in mine}
        wallet.lock_accounts([source.pk, *targets.values()])
        now = clock.now()
        for transfer in mine:
            transfer.entry = wallet.transfer(
                source_id=source.pk, destination_id=targets[transfer.creditor_id], amount=transfer.amount,
                kind="settle_up", idempotency_key=f"payments:settle:{transfer.pk}", memo="AA结清 Settle up",
                initiated_by_id=user.pk,
            ).entry
            transfer.status, transfer.paid_at = SettlementTransfer.Status.PAID, now
            transfer.save(update_fields=["entry", "status", "paid_at"])
            activity_hooks.report_activity(user_id=user.pk, kind="aa_payment", amount=transfer.amount,
                                           reference=f"wallet:entry:{transfer.entry.pk}",
                                           occurred_at=transfer.entry.created_at)
            tell([transfer.creditor_id], event="payments.settle_up_paid", title="结清账单",
                 body=f"{user.display_name} 已支付 {format_fen(transfer.amount)}。",
                 payload={"id": encode_id(TYPE, settlement.pk)}, conversation_id=settlement.conversation_id)
        covered = settlement.shares.filter(status=Share.Status.PENDING)
        covered.filter(participant=user).update(status=Share.Status.PAID, paid_at=now)
        if not settlement.transfers.filter(status=SettlementTransfer.Status.PENDING).exists():
            covered.update(status=Share.Status.PAID, paid_at=now)
            settlement.status, settlement.completed_at = Settlement.Status.COMPLETED, now
            settlement.save(update_fields=["status", "completed_at"])
        update_card(settlement, card_state(settlement))
        for bill in bills:
            finish_if_done(bill)
            update_card(bill, bill_card_state(bill))
        return mine


def cancel_settlement(*, user: Any, settlement_id: int) -> Settlement:
    """Whoever started it may call it off while nobody has paid into it; its shares are open again."""
    with transaction.atomic():
        settlement = _lock(settlement_id, user)
        if settlement.created_by_id != user.pk:
            raise NotParticipant("Only whoever started the settle-up can cancel it.", field="settlementId")
        if settlement.transfers.filter(status=SettlementTransfer.Status.PAID).exists():
            raise SettlementStarted(field="settlementId")
        _bills_locked(settlement)
        settlement.shares.update(settlement=None)
        settlement.status, settlement.completed_at = Settlement.Status.CANCELLED, clock.now()
        settlement.save(update_fields=["status", "completed_at"])
        update_card(settlement, card_state(settlement))
        return settlement
