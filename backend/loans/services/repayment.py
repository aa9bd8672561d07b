"""Repayments: on time, partial or early. Allocation is penalty → interest → principal over the instalments
already due (oldest first), then the following instalments in order. Paying the whole payoff amount settles
the loan early: interest only to date (the current period's interest pro rata by days, later periods' waived).

Money path: borrower wallet → loan escrow → each lender's wallet, split pro rata to pledges by
core.money.split_onwards (each pledge's cumulative receipts stay within 1 fen of its exact share after every
repayment, however small); a lender's active referral boost is paid on top from the marketing budget, never
from the borrower."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal
from typing import Any

from django.db import transaction

from backend.circles import services as circles
from backend.core import activity_hooks, clock
from backend.core.errors import NotFound
from backend.core.money import split_by_weights, split_onwards
from backend.referrals import selectors as referrals
from backend.wallet import services as wallet
from backend.wallet.models import LedgerAccount
from backend.wallet.money import format_fen

from .. import schedule
from ..models import Instalment, LenderReceipt, Loan, Pledge, Repayment
from ._common import LoanClosed, OverRepayment, circle_ids_of, clean_key, lender_ids, lock_loan, tell
from .cards import refresh_loan_cards
from .funding import escrow

log = logging.getLogger("quanzi.loans")
REPAYABLE = (Loan.Status.ACTIVE, Loan.Status.DEFAULTED, Loan.Status.WRITTEN_OFF)


def _period_start(loan: Loan, inst: Instalment) -> dt.date:
    if inst.number == 1:
        return loan.disbursed_at.date()
    return schedule.add_months(loan.disbursed_at.date(), inst.number - 1)


def accrued_interest(loan: Loan, inst: Instalment, today: dt.date) -> int:
    """Interest of the current (not yet due) period earned up to `today`, pro rata by days."""
    start = _period_start(loan, inst)
    days, elapsed = (inst.due_date - start).days, max(0, (today - start).days)
    return schedule.fen(Decimal(inst.interest) * elapsed / days) if days > 0 else inst.interest


def payoff_amount(loan: Loan, *, today: dt.date | None = None) -> int:
    """What settles the loan in full today."""
    today = today or clock.now().date()
    total, current_seen = 0, False
    for inst in loan.instalments.filter(paid_at__isnull=True).order_by("number"):
        if inst.due_date <= today:
            total += inst.due
            continue
        total += inst.principal - inst.paid_principal
        if not current_seen:
            total += max(0, accrued_interest(loan, inst, today) - inst.paid_interest)
            current_seen = True
    return total


def _allocate(loan: Loan, instalments: list[Instalment], amount: int, today: dt.date, payoff: int
              ) -> tuple[int, int, int]:
    """Apply `amount` to the (locked) instalments in place; returns (penalty, interest, principal)."""
    left, got = amount, {"penalty": 0, "interest": 0, "principal": 0}

    def take(inst: Instalment, field: str, owed: int, bucket: str) -> None:
        nonlocal left
        part = min(left, max(0, owed))
        if part:
            setattr(inst, field, getattr(inst, field) + part)
            got[bucket] += part
            left -= part

    due = [i for i in instalments if i.due_date <= today]
    later = [i for i in instalments if i.due_date > today]
    for inst in due:
        take(inst, "paid_penalty", inst.penalty - inst.paid_penalty, "penalty")
    for inst in due:
        take(inst, "paid_interest", inst.interest - inst.paid_interest - inst.waived_interest, "interest")
    for inst in due:
        take(inst, "paid_principal", inst.principal - inst.paid_principal, "principal")
    if amount == payoff:  # early settlement: only the interest earned to date
        for n, inst in enumerate(later):
            owed = accrued_interest(loan, inst, today) if n == 0 else 0
            take(inst, "paid_interest", owed - inst.paid_interest, "interest")
            take(inst, "paid_principal", inst.principal - inst.paid_principal, "principal")
            inst.waived_interest = inst.interest - inst.paid_interest
    else:
        for inst in later:
            take(inst, "paid_interest", inst.interest - inst.paid_interest, "interest")
            take(inst, "paid_principal", inst.principal - inst.paid_principal, "principal")
    assert left == 0, "allocation must place every fen"
    now = clock.now()
    for inst in instalments:
        if inst.paid_at is None and inst.due == 0:
            inst.paid_at = now
        inst.save(update_fields=["paid_penalty", "paid_interest", "paid_principal", "waived_interest", "paid_at"])
    return got["penalty"], got["interest"], got["principal"]


def repay(*, borrower: Any, loan_id: object, amount: object, idempotency_key: object) -> Repayment:
    """The borrower pays `amount` towards their loan. Replaying a key returns the first repayment."""
    amount = wallet.validate_amount(amount)
    clean_key(idempotency_key)
    with transaction.atomic():
        loan = lock_loan(loan_id)
        if loan.borrower_id != borrower.pk:
            raise NotFound(field="loanId")  # someone else's loan is answered like a missing one
        replay = loan.repayments.filter(idempotency_key=idempotency_key).first()
        if replay is not None:
            if replay.amount != amount:
                raise wallet.IdempotencyConflict(field="idempotencyKey")
            return replay
        if loan.status not in REPAYABLE:
            raise LoanClosed(field="loanId")
        today = clock.now().date()
        payoff = payoff_amount(loan, today=today)
        if amount > payoff:
            raise OverRepayment(f"At most {format_fen(payoff)} settles the loan.", field="amount")
        pledges = list(loan.pledges.filter(status=Pledge.Status.POSTED).select_related("lender").order_by("id"))
        box, marketing = escrow(), wallet.system_account(LedgerAccount.Kind.MARKETING_BUDGET)
        source = wallet.ensure_wallet(user_id=borrower.pk)
        lender_wallets = {p.lender_id: wallet.ensure_wallet(user_id=p.lender_id) for p in pledges}
        wallet.lock_accounts([source.pk, box.pk, marketing.pk, *(w.pk for w in lender_wallets.values())])
        entry = wallet.transfer(source_id=source.pk, destination_id=box.pk, amount=amount, kind="loan_repayment",
                                idempotency_key=f"loans:{loan.pk}:repay:{idempotency_key}",
                                memo=f"还款 {loan.pseudonym}", initiated_by_id=borrower.pk).entry
        instalments = list(Instalment.objects.select_for_update().filter(loan=loan, paid_at__isnull=True)
                           .order_by("number"))
        penalty, interest, principal = _allocate(loan, instalments, amount, today, payoff)
        repayment = Repayment.objects.create(loan=loan, amount=amount, penalty=penalty, interest=interest,
                                             principal=principal, entry=entry, idempotency_key=idempotency_key)
        _pay_lenders(loan, repayment, pledges, lender_wallets, marketing)
        activity_hooks.report_activity(user_id=borrower.pk, kind="loan_repayment", amount=amount,
                                       reference=f"loans:repayment:{repayment.pk}", occurred_at=entry.created_at)
        if not loan.instalments.filter(paid_at__isnull=True).exists():
            _settled(loan)
        tell([borrower.pk], loan=loan, event="loans.repaid", title="还款成功",
             body=f"已还款 {format_fen(amount)}。")
        return repayment


def _pay_lenders(loan: Loan, repayment: Repayment, pledges: list[Pledge], lender_wallets: dict,
                 marketing: LedgerAccount) -> None:
    weights = [p.amount for p in pledges]
    parts = split_onwards(repayment.amount, weights, [p.received for p in pledges])
    interest_parts = split_by_weights(repayment.interest + repayment.penalty, weights)  # what each boost is on
    box, now = escrow(), clock.now()
    for p, part, interest_part in zip(pledges, parts, interest_parts, strict=True):
        receipt = LenderReceipt(repayment=repayment, pledge=p, amount=part)
        if part:
            wallet.transfer(source_id=box.pk, destination_id=lender_wallets[p.lender_id].pk, amount=part,
                            kind="loan_repayment", idempotency_key=f"loans:repayment:{repayment.pk}:{p.pk}",
                            memo=f"回款 {loan.pseudonym}")
        boost_bp = referrals.active_boost_bp(p.lender, "lending", at=now)
        if boost_bp and interest_part and loan.rate_bp:
            boost = schedule.fen(Decimal(interest_part) * boost_bp / loan.rate_bp)
            if boost and _budget_has(marketing.pk, boost):
                wallet.transfer(source_id=marketing.pk, destination_id=lender_wallets[p.lender_id].pk,
                                amount=boost, kind="loan_boost",
                                idempotency_key=f"loans:repayment:{repayment.pk}:{p.pk}:boost",
                                memo=f"加息奖励 {loan.pseudonym}")
                receipt.boost = boost
            elif boost:
                log.warning("loans: marketing budget short, boost of %s fen on repayment %s not paid",
                            boost, repayment.pk)
        receipt.save()
        Pledge.objects.filter(pk=p.pk).update(received=p.received + part, boost_received=p.boost_received
                                              + receipt.boost)
    tell(lender_ids(loan), loan=loan, event="loans.repayment_received", title="收到回款",
         body=f"{loan.pseudonym} 还款 {format_fen(repayment.amount)}，已按出借比例分配。")


def _budget_has(account_id: int, amount: int) -> bool:
    balance, held = LedgerAccount.objects.filter(pk=account_id).values_list("balance", "held").get()
    return balance - held >= amount


def _settled(loan: Loan) -> None:
    """The last fen is in: close the loan and tell circles how it went (a recovered default counts late)."""
    now = clock.now()
    recovered = loan.status in (Loan.Status.DEFAULTED, Loan.Status.WRITTEN_OFF)
    if recovered:
        loan.recovered_at = now
    loan.status, loan.closed_at = Loan.Status.REPAID, now
    loan.save(update_fields=["status", "closed_at", "recovered_at"])
    refresh_loan_cards(loan)
    outcome = "late" if (loan.was_late or recovered) else "on_time"
    circles.record_loan_outcome(user_id=loan.borrower_id, circle_ids=circle_ids_of(loan), loan_ref=loan.ref,
                                outcome=outcome)
    tell(lender_ids(loan), loan=loan, event="loans.settled", title="借款已结清",
         body=f"{loan.pseudonym} 的借款已全部还清。" + ("（违约后追回）" if recovered else ""))
