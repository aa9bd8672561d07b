"""AA收款 AA bills: a member of a group or circle conversation bills chosen members for a total, split equally,
by exact amounts, by percentages (basis points) or by shares — integer fen by the largest-remainder rule
(``core.money``), participants ordered by user id, so the earlier id wins a tie. Each participant pays their
share from their wallet to the creator (idempotent), declines, or is marked paid offline by the creator; the
creator can remind, close early (paid shares kept) or cancel (paid shares refunded or kept, as chosen).

Locking: every use case locks the bill row first (then, inside the wallet, the accounts; then, inside chat,
the conversation), so a payment and a cancel of one bill run one after the other and never double-charge.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.db import transaction

from backend.chat.models import Conversation
from backend.core import activity_hooks, clock
from backend.core.errors import Conflict, NotFound, ValidationFailed
from backend.core.ids import encode_id
from backend.core.money import split_by_weights
from backend.core.text import is_blank, is_clean_line
from backend.core.values import is_int
from backend.wallet import risk
from backend.wallet import services as wallet
from backend.wallet.money import format_fen

from ..limits import payments_setting
from ..models import Bill, Share
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
from .red_packets import TooFewFen

TYPE = "AaBill"
BILL_CONVERSATIONS = (Conversation.Kind.GROUP, Conversation.Kind.CIRCLE)


class BillNotOpen(Conflict):
    code = "BILL_NOT_OPEN"
    default_message = "This bill was completed, closed or cancelled."


class ShareInSettlement(Conflict):
    code = "SHARE_IN_SETTLEMENT"
    default_message = "This share is being cleared by a settle-up; pay through the settle-up."


class BillInSettlement(Conflict):
    code = "BILL_IN_SETTLEMENT"
    default_message = "Shares of this bill are part of an open settle-up."


class SplitInvalid(ValidationFailed):
    code = "SPLIT_INVALID"
    default_message = "The split does not add up."


class RemindedRecently(Conflict):
    code = "REMINDED_RECENTLY"
    default_message = "A reminder was sent recently."


# --- the split ---------------------------------------------------------------------------------------


def split_bill(total: int, method: str, participants: Sequence[tuple[int, object]]) -> dict[int, int]:
    """{user id: share in fen}. `participants` are (user id, value); values by method: none (equal), fen
    (exact, must sum to the total), basis points (percent, must sum to 10000) or positive integers (shares)."""
    ordered = sorted(participants, key=lambda p: p[0])  # the documented tie-break: lower user id first
    ids = [uid for uid, _ in ordered]
    values = [value for _, value in ordered]
    if method == Bill.Method.EQUAL:
        parts = split_by_weights(total, [1] * len(ids))
    else:
        if not all(is_int(v) and v > 0 for v in values):
            raise SplitInvalid("Each participant needs a whole, positive value.", field="participants")
        if method == Bill.Method.EXACT:
            if sum(values) != total:
                raise SplitInvalid("Exact amounts must add up to the total.", field="participants")
            parts = list(values)
        elif method == Bill.Method.PERCENT:
            if sum(values) != 10_000:
                raise SplitInvalid("Percentages (in basis points) must add up to 100% (10000).",
                                   field="participants")
            parts = split_by_weights(total, values)
        elif method == Bill.Method.SHARES:
            parts = split_by_weights(total, values)
        else:
            raise SplitInvalid("Split equally, by exact amounts, percentages or shares.", code="METHOD_INVALID",
                               field="method")
    if min(parts) < 1:
        raise TooFewFen("Every share must be at least 1 fen.", field="amount")
    return dict(zip(ids, parts, strict=True))


# --- the card ----------------------------------------------------------------------------------------


def card_state(bill: Bill) -> dict:
    shares = list(bill.shares.order_by("participant_id").values_list("participant_id", "amount", "status"))
    paid = [s for s in shares if s[2] in (Share.Status.PAID, Share.Status.PAID_OFFLINE)]
    return {
        "status": bill.status, "total": bill.total, "method": bill.method, "creator": gid(bill.creator_id),
        "count": len(shares), "paid_count": len(paid), "paid_amount": sum(s[1] for s in paid),
        "refunded_on_cancel": bill.refunded_on_cancel,
        "shares": [[gid(uid), amount, status] for uid, amount, status in shares[:payments_setting("CARD_LIST_MAX")]],
    }


def _title(value: object) -> str:
    if not isinstance(value, str) or is_blank(value) or not is_clean_line(value) \
            or len(value.strip()) > payments_setting("BILL_TITLE_MAX_CHARS"):
        raise ValidationFailed(f"A title is one line of 1 to {payments_setting('BILL_TITLE_MAX_CHARS')} characters.",
                               code="TITLE_INVALID", field="title")
    return value.strip()


def _participants(value: object, conversation: Conversation) -> list[tuple[int, object]]:
    if not isinstance(value, list | tuple) or not value \
            or len(value) > payments_setting("BILL_MAX_PARTICIPANTS"):
        raise ValidationFailed(f"Bill 1 to {payments_setting('BILL_MAX_PARTICIPANTS')} members.",
                               code="PARTICIPANTS_INVALID", field="participants")
    members = active_member_ids(conversation.pk)
    seen: set[int] = set()
    out = []
    for item in value:
        uid, amount = item if isinstance(item, tuple | list) and len(item) == 2 else (item, None)
        if not is_int(uid) or uid in seen:
            raise ValidationFailed("Each participant once.", code="PARTICIPANTS_INVALID", field="participants")
        if uid not in members:
            raise NotFound("Participants must be members of the conversation.", field="participants")
        seen.add(uid)
        out.append((uid, amount))
    return out


# --- use cases ---------------------------------------------------------------------------------------


def create_bill(*, creator: Any, conversation_id: object, title: object, amount: object, method: object,
                participants: object, idempotency_key: object) -> tuple[Bill, bool]:
    """Bill members for a total. The creator may be among the participants (their part is marked own)."""
    key = client_key(idempotency_key)
    return create_once(Bill, {"creator": creator, "idempotency_key": key}, lambda: _create(
        creator=creator, conversation_id=conversation_id, title=title, amount=amount, method=method,
        participants=participants, key=key))


def _create(*, creator: Any, conversation_id: object, title: object, amount: object, method: object,
            participants: object, key: str) -> Bill:
    total = wallet.validate_amount(amount)
    title = _title(title)
    conversation = conversation_of_member(conversation_id, creator.pk)
    if conversation.kind not in BILL_CONVERSATIONS:
        raise WrongConversationKind("AA bills are for group and circle conversations.", field="conversationId")
    if method not in Bill.Method.values:
        raise SplitInvalid("Split equally, by exact amounts, percentages or shares.", code="METHOD_INVALID",
                           field="method")
    parts = split_bill(total, method, _participants(participants, conversation))
    if set(parts) == {creator.pk}:
        raise ValidationFailed("Bill at least one other member.", code="PARTICIPANTS_INVALID", field="participants")
    bill = Bill.objects.create(conversation=conversation, creator=creator, title=title, total=total,
                               method=method, idempotency_key=key)
    Share.objects.bulk_create([
        Share(bill=bill, participant_id=uid, amount=part,
              status=Share.Status.OWN if uid == creator.pk else Share.Status.PENDING)
        for uid, part in parts.items()
    ])
    post_card(bill, sender=creator, kind="aa_bill", id_field="bill_id", type_name=TYPE, title=title,
              state=card_state(bill))
    for uid, part in parts.items():
        if uid != creator.pk:
            tell([uid], event="payments.bill_created", title=f"AA收款：{title}",
                 body=f"{creator.display_name} 请你支付 {format_fen(part)}。",
                 payload={"id": encode_id(TYPE, bill.pk)}, conversation_id=conversation.pk)
    return bill


def _lock_bill(bill_id: int, user: Any) -> Bill:
    bill = Bill.objects.select_for_update().filter(pk=bill_id).first()
    if bill is None or not is_member(bill.conversation_id, user.pk):
        raise NotFound(field="billId")
    return bill


def _lock_share(share_id: int, user: Any) -> tuple[Bill, Share]:
    bill_id = Share.objects.filter(pk=share_id).values_list("bill_id", flat=True).first()
    if bill_id is None:
        raise NotFound(field="shareId")
    bill = _lock_bill(bill_id, user)
    return bill, Share.objects.select_for_update().get(pk=share_id)


def _open(bill: Bill) -> None:
    if bill.status != Bill.Status.OPEN:
        raise BillNotOpen(field="billId")


def _check_pending(bill: Bill, share: Share) -> None:
    """The share can still be paid, declined or marked: its bill is open, no settle-up covers it."""
    _open(bill)
    if share.settlement_id is not None:
        raise ShareInSettlement(field="shareId")
    if share.status != Share.Status.PENDING:
        raise AlreadyResolved(field="shareId")


def finish_if_done(bill: Bill) -> None:
    """A bill with no pending share left is completed. The caller holds the bill's lock."""
    if bill.status == Bill.Status.OPEN and not bill.shares.filter(status=Share.Status.PENDING).exists():
        bill.status, bill.closed_at = Bill.Status.COMPLETED, clock.now()
        bill.save(update_fields=["status", "closed_at"])
        tell([bill.creator_id], event="payments.bill_completed", title=f"AA收款：{bill.title}",
             body=f"所有人已支付，共 {format_fen(bill.total)}。", payload={"id": encode_id(TYPE, bill.pk)},
             conversation_id=bill.conversation_id)


def _changed(bill: Bill) -> Bill:
    finish_if_done(bill)
    update_card(bill, card_state(bill))
    return bill


def pay_share(*, user: Any, share_id: int, risk_confirmation: object = None) -> Share:
    """Pay my share from my wallet to the creator. Paying again is a no-op that returns the paid share."""
    count_money_action(user)
    with transaction.atomic():
        bill, share = _lock_share(share_id, user)
        if share.participant_id != user.pk:
            raise NotParticipant("You can only pay your own share.", field="shareId")
        if share.status == Share.Status.PAID and share.settlement_id is None:
            return share  # already paid (a retry): nothing moves again
        _check_pending(bill, share)
        risk.check_payee(payer_id=user.pk, payee_id=bill.creator_id, amount=share.amount,
                         confirmation=risk_confirmation)
        source = wallet.ensure_wallet(user_id=user.pk)
        destination = wallet.ensure_wallet(user_id=bill.creator_id)
        share.entry = wallet.transfer(
            source_id=source.pk, destination_id=destination.pk, amount=share.amount, kind="aa_share",
            idempotency_key=f"payments:share:{share.pk}:pay", memo=f"AA {bill.title}"[:140],
            initiated_by_id=user.pk,
        ).entry
        share.status, share.paid_at = Share.Status.PAID, clock.now()
        share.save(update_fields=["entry", "status", "paid_at"])
        activity_hooks.report_activity(user_id=user.pk, kind="aa_payment", amount=share.amount,
                                       reference=f"wallet:entry:{share.entry.pk}", occurred_at=share.entry.created_at)
        tell([bill.creator_id], event="payments.share_paid", title=f"AA收款：{bill.title}",
             body=f"{user.display_name} 已支付 {format_fen(share.amount)}。", payload={"id": encode_id(TYPE, bill.pk)},
             conversation_id=bill.conversation_id)
        _changed(bill)
        return share


def decline_share(*, user: Any, share_id: int) -> Share:
    with transaction.atomic():
        bill, share = _lock_share(share_id, user)
        if share.participant_id != user.pk:
            raise NotParticipant("You can only decline your own share.", field="shareId")
        _check_pending(bill, share)
        share.status = Share.Status.DECLINED
        share.save(update_fields=["status"])
        tell([bill.creator_id], event="payments.share_declined", title=f"AA收款：{bill.title}",
             body=f"{user.display_name} 拒绝了 {format_fen(share.amount)}。", payload={"id": encode_id(TYPE, bill.pk)},
             conversation_id=bill.conversation_id)
        _changed(bill)
        return share


def mark_paid_offline(*, user: Any, share_id: int) -> Share:
    """The creator records that a participant paid outside the app (cash, bank transfer). Nothing moves."""
    with transaction.atomic():
        bill, share = _lock_share(share_id, user)
        if bill.creator_id != user.pk:
            raise NotParticipant("Only the creator can mark a share paid.", field="shareId")
        _check_pending(bill, share)
        share.status, share.paid_at = Share.Status.PAID_OFFLINE, clock.now()
        share.save(update_fields=["status", "paid_at"])
        tell([share.participant_id], event="payments.share_marked_paid", title=f"AA收款：{bill.title}",
             body=f"{bill.creator.display_name} 已确认你线下支付 {format_fen(share.amount)}。",
             payload={"id": encode_id(TYPE, bill.pk)}, conversation_id=bill.conversation_id)
        _changed(bill)
        return share


def _remind(bill: Bill) -> int:
    pending = list(bill.shares.filter(status=Share.Status.PENDING, settlement__isnull=True)
                   .values_list("participant_id", "amount"))
    for uid, amount in pending:
        tell([uid], event="payments.bill_reminder", title=f"AA收款提醒：{bill.title}",
             body=f"请支付 {format_fen(amount)}。", payload={"id": encode_id(TYPE, bill.pk)},
             conversation_id=bill.conversation_id)
    bill.last_reminded_at = clock.now()
    bill.save(update_fields=["last_reminded_at"])
    return len(pending)


def remind_bill(*, user: Any, bill_id: int) -> int:
    """The creator nudges everyone who has not paid; at most once per REMINDER_HOURS. Returns how many."""
    with transaction.atomic():
        bill = _lock_bill(bill_id, user)
        if bill.creator_id != user.pk:
            raise NotParticipant("Only the creator can send reminders.", field="billId")
        _open(bill)
        gap = dt.timedelta(hours=payments_setting("REMINDER_HOURS"))
        if bill.last_reminded_at is not None and clock.now() - bill.last_reminded_at < gap:
            raise RemindedRecently(field="billId")
        return _remind(bill)


def remind_due_bills(*, limit: int = 200) -> int:
    """The scheduled reminder: open bills with unpaid shares, last reminded (or created) REMINDER_HOURS ago."""
    cutoff = clock.now() - dt.timedelta(hours=payments_setting("REMINDER_HOURS"))
    due = list(Bill.objects.filter(status=Bill.Status.OPEN, created_at__lte=cutoff, shares__status=Share.Status.PENDING)
               .exclude(last_reminded_at__gt=cutoff).distinct().order_by("id").values_list("pk", flat=True)[:limit])
    done = 0
    for bill_id in due:
        with transaction.atomic():
            bill = Bill.objects.select_for_update().get(pk=bill_id)
            if bill.status != Bill.Status.OPEN or (bill.last_reminded_at and bill.last_reminded_at > cutoff):
                continue
            done += 1 if _remind(bill) else 0
    return done


def _end(bill: Bill, user: Any, status: str) -> None:
    if bill.creator_id != user.pk:
        raise NotParticipant("Only the creator can close or cancel the bill.", field="billId")
    _open(bill)
    if bill.shares.filter(settlement__isnull=False, settlement__status="open").exists():
        raise BillInSettlement(field="billId")
    bill.shares.filter(status=Share.Status.PENDING).update(status=Share.Status.VOID)
    bill.status, bill.closed_at = status, clock.now()


def close_bill(*, user: Any, bill_id: int) -> Bill:
    """Stop collecting: paid shares are kept, unpaid ones are dropped."""
    with transaction.atomic():
        bill = _lock_bill(bill_id, user)
        _end(bill, user, Bill.Status.CLOSED)
        bill.save(update_fields=["status", "closed_at"])
        update_card(bill, card_state(bill))
        return bill


def cancel_bill(*, user: Any, bill_id: int, refund_paid: bool) -> Bill:
    """Call the bill off. With refund_paid, every share paid through the wallet goes back from the creator's
    wallet (all or nothing: if the creator cannot cover the refunds, nothing changes); otherwise they are kept.
    Shares marked paid offline were settled outside the app and stay as they are. The card says which."""
    with transaction.atomic():
        bill = _lock_bill(bill_id, user)
        _end(bill, user, Bill.Status.CANCELLED)
        bill.refunded_on_cancel = bool(refund_paid)
        if refund_paid:
            paid = list(bill.shares.select_for_update().filter(status=Share.Status.PAID).order_by("id"))
            creator_wallet = wallet.ensure_wallet(user_id=bill.creator_id)
            wallets = {s.participant_id: wallet.ensure_wallet(user_id=s.participant_id).pk for s in paid}
            wallet.lock_accounts([creator_wallet.pk, *wallets.values()])
            for share in paid:
                share.refund_entry = wallet.transfer(
                    source_id=creator_wallet.pk, destination_id=wallets[share.participant_id], amount=share.amount,
                    kind="aa_refund", idempotency_key=f"payments:share:{share.pk}:refund",
                    memo=f"AA退款 {bill.title}"[:140], initiated_by_id=user.pk,
                ).entry
                share.status = Share.Status.REFUNDED
                share.save(update_fields=["refund_entry", "status"])
        bill.save(update_fields=["status", "closed_at", "refunded_on_cancel"])
        update_card(bill, card_state(bill))
        others = bill.shares.exclude(participant_id=bill.creator_id).values_list("participant_id", flat=True)
        tell(list(others), event="payments.bill_cancelled", title=f"AA收款已取消：{bill.title}",
             body="已付款项已退回。" if refund_paid else "已付款项不退回。",
             payload={"id": encode_id(TYPE, bill.pk)}, conversation_id=bill.conversation_id)
        return bill
