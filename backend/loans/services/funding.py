"""Funding: pledges are holds on the lender's wallet towards the loan escrow; the pledge that completes the
amount posts every hold to escrow and disburses the loan to the borrower in the same transaction; unfunded
requests past their deadline (or cancelled) get every hold voided.

Locking: the loan row first (pledges on one request queue there, so it is never over-funded), then wallet
accounts in ascending id order inside wallet.services (all of them up front when disbursing)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from backend.circles import selectors as circles
from backend.core import clock
from backend.core.errors import NotFound
from backend.referrals import services as referrals
from backend.wallet import services as wallet
from backend.wallet.models import LedgerAccount
from backend.wallet.money import format_fen

from .. import schedule
from ..limits import loans_setting
from ..models import Instalment, Loan, Pledge
from ._common import (
    LenderBlacklisted,
    LoanClosed,
    NotATicketMultiple,
    OverFunding,
    OwnLoan,
    clean_key,
    lender_ids,
    lock_loan,
    may_see,
    tell,
)
from .cards import refresh_loan_cards

QUALIFYING_KIND = "lending_pledge_disbursed"


def escrow() -> LedgerAccount:
    return wallet.system_account(LedgerAccount.Kind.LOAN_ESCROW)


def pledge(*, lender: Any, loan_id: object, amount: object, idempotency_key: object) -> Pledge:
    """Lend part of a request: a hold of `amount` on the lender's wallet. Replaying a key returns the pledge."""
    amount = wallet.validate_amount(amount)
    clean_key(idempotency_key)
    if amount % loans_setting("TICKET_FEN"):
        raise NotATicketMultiple(f"Pledges are multiples of {format_fen(loans_setting('TICKET_FEN'))}.",
                                 field="amount")
    with transaction.atomic():
        loan = lock_loan(loan_id)
        if not may_see(loan, lender.pk):
            raise NotFound(field="loanId")  # not in any of its circles: as if it did not exist
        replay = Pledge.objects.filter(lender=lender, idempotency_key=idempotency_key).first()
        if replay is not None:
            if replay.loan_id != loan.pk or replay.amount != amount:
                raise wallet.IdempotencyConflict(field="idempotencyKey")
            return replay
        if loan.borrower_id == lender.pk:
            raise OwnLoan(field="loanId")
        if circles.is_blacklisted(lender.pk):
            raise LenderBlacklisted()
        if loan.status != Loan.Status.FUNDING or clock.now() >= loan.funding_deadline:
            raise LoanClosed(field="loanId")
        if amount > loan.amount - loan.funded:
            raise OverFunding(f"At most {format_fen(loan.amount - loan.funded)} is left.", field="amount")
        hold = wallet.place_hold(
            source_id=wallet.ensure_wallet(user_id=lender.pk).pk, destination_id=escrow().pk, amount=amount,
            idempotency_key=f"loans:pledge:{loan.pk}:{lender.pk}:{idempotency_key}", kind="loan_pledge",
            memo=f"出借 {loan.pseudonym}", initiated_by_id=lender.pk).hold
        made = Pledge.objects.create(loan=loan, lender=lender, amount=amount, hold=hold,
                                     idempotency_key=idempotency_key)
        loan.funded += amount
        loan.save(update_fields=["funded"])
        if loan.funded == loan.amount:
            disburse(loan)
        refresh_loan_cards(loan)
        return made


def disburse(loan: Loan) -> None:
    """Fully funded (loan row locked): post every hold to escrow, pay the borrower, write the schedule."""
    pledges = list(loan.pledges.filter(status=Pledge.Status.HELD).order_by("id"))
    box = escrow()
    borrower_wallet = wallet.ensure_wallet(user_id=loan.borrower_id)
    wallet.lock_accounts([p.hold.source_id for p in pledges] + [box.pk, borrower_wallet.pk])
    for p in pledges:
        wallet.post_hold(hold_id=p.hold_id, idempotency_key=f"loans:pledge:{p.pk}:post")
    Pledge.objects.filter(pk__in=[p.pk for p in pledges]).update(status=Pledge.Status.POSTED)
    now = clock.now()
    loan.disburse_entry = wallet.transfer(
        source_id=box.pk, destination_id=borrower_wallet.pk, amount=loan.amount, kind="loan_disbursement",
        idempotency_key=f"loans:{loan.pk}:disburse", memo=f"借款放款 {loan.pseudonym}").entry
    loan.status, loan.disbursed_at = Loan.Status.ACTIVE, now
    loan.save(update_fields=["status", "disbursed_at", "disburse_entry"])
    lines = schedule.build(loan.amount, loan.rate_bp, loan.term_months, loan.method)
    apart = loan.term_months if loan.method == Loan.Method.BULLET else 1
    dates = schedule.due_dates(now.date(), len(lines), months_apart=apart)
    Instalment.objects.bulk_create([
        Instalment(loan=loan, number=line.number, due_date=day, principal=line.principal, interest=line.interest)
        for line, day in zip(lines, dates, strict=True)])
    for p in pledges:
        if not Pledge.objects.filter(lender_id=p.lender_id, status=Pledge.Status.POSTED).exclude(
                loan=loan).exists() and p.pk == min(q.pk for q in pledges if q.lender_id == p.lender_id):
            referrals.record_qualifying_event(user=p.lender, kind=QUALIFYING_KIND, amount=p.amount,
                                              reference=f"loans:pledge:{p.pk}", occurred_at=now)
    tell([loan.borrower_id], loan=loan, event="loans.disbursed", title="借款已放款",
         body=f"借款 {format_fen(loan.amount)} 已到账，首期还款日 {dates[0].isoformat()}。")
    tell(lender_ids(loan), loan=loan, event="loans.funded", title="出借已成交",
         body=f"{loan.pseudonym} 的借款已满标放款。")


def void_pledges(loan: Loan, *, reason: str) -> None:
    """Release every held pledge of a locked loan (cancel, expiry); funded drops to 0."""
    for p in loan.pledges.filter(status=Pledge.Status.HELD).order_by("id"):
        wallet.void_hold(hold_id=p.hold_id, idempotency_key=f"loans:pledge:{p.pk}:void")
        p.status = Pledge.Status.VOIDED
        p.save(update_fields=["status"])
    loan.funded = 0


def expire_unfunded_requests(*, limit: int = 500) -> int:
    """Requests past their funding deadline without full funding: every hold voided. Idempotent."""
    due = list(Loan.objects.filter(status=Loan.Status.FUNDING, funding_deadline__lte=clock.now())
               .order_by("id").values_list("pk", flat=True)[:limit])
    done = 0
    for loan_id in due:
        with transaction.atomic():
            loan = lock_loan(loan_id)
            if loan.status != Loan.Status.FUNDING:
                continue
            lenders = lender_ids(loan)
            void_pledges(loan, reason="expired")
            loan.status, loan.closed_at = Loan.Status.EXPIRED, clock.now()
            loan.save(update_fields=["status", "closed_at", "funded"])
            refresh_loan_cards(loan)
            tell([loan.borrower_id], loan=loan, event="loans.request_expired", title="借款请求已过期",
                 body="募集期内未满标，请求已关闭。")
            tell(lenders, loan=loan, event="loans.request_expired", title="出借已解冻",
                 body=f"{loan.pseudonym} 的借款未满标，你的出借金额已解冻。")
            done += 1
    return done
