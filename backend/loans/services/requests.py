"""Loan requests: eligibility, the borrowing limit, creating and cancelling a request."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from django.db import transaction
from django.db.models import Sum

from backend.circles import selectors as circles
from backend.circles.models import CircleMember
from backend.core import clock
from backend.core.errors import NotFound, ValidationFailed
from backend.core.text import is_clean_line
from backend.core.values import is_int
from backend.wallet import services as wallet

from ..limits import loans_setting
from ..models import Loan, LoanCircle
from ._common import (
    LoanClosed,
    NotEligible,
    OverLimit,
    RateTooHigh,
    TermInvalid,
    lender_ids,
    lock_loan,
    tell,
)
from .cards import post_loan_cards, refresh_loan_cards
from .funding import void_pledges

OPEN_STATUSES = (Loan.Status.FUNDING, Loan.Status.ACTIVE, Loan.Status.DEFAULTED)
PSEUDONYM_PREFIX = "匿名借款人"


def borrowing_limit(user_id: int, circle_ids: list[int]) -> int:
    """Limit (fen) = best trust score among the chosen circles × LIMIT_FEN_PER_TRUST_POINT, less the principal
    of the borrower's other open requests and loans (so spreading requests over circles buys nothing)."""
    scores = [p.score for p in (circles.trust_profile(user_id, c) for c in circle_ids) if p is not None]
    gross = max(scores, default=0) * loans_setting("LIMIT_FEN_PER_TRUST_POINT")
    taken = Loan.objects.filter(borrower_id=user_id, status__in=OPEN_STATUSES).aggregate(s=Sum("amount"))["s"] or 0
    return max(0, gross - taken)


def in_arrears(user_id: int) -> bool:
    today = clock.now().date()
    return Loan.objects.filter(borrower_id=user_id, status__in=(Loan.Status.ACTIVE, Loan.Status.DEFAULTED),
                               instalments__due_date__lt=today, instalments__paid_at__isnull=True).exists()


def check_eligible(user: Any) -> None:
    if user.kyc_level < loans_setting("MIN_KYC_LEVEL"):
        raise NotEligible("Verify your identity (KYC) before borrowing.", code="KYC_REQUIRED")
    if circles.is_blacklisted(user.pk):
        raise NotEligible("Blacklisted users cannot borrow.", code="BLACKLISTED")
    if in_arrears(user.pk):
        raise NotEligible("Repay the loan in arrears first.", code="IN_ARREARS")


def _member_circles(user_id: int, circle_ids: object) -> list[int]:
    if not isinstance(circle_ids, list | tuple) or not circle_ids or not all(is_int(c) for c in circle_ids):
        raise ValidationFailed("Choose at least one of your circles.", code="CIRCLES_REQUIRED", field="circleIds")
    wanted = sorted(set(circle_ids))
    mine = set(CircleMember.objects.filter(user_id=user_id, circle_id__in=wanted, left_at__isnull=True)
               .values_list("circle_id", flat=True))
    if mine != set(wanted):  # a circle you are not in is answered like one that does not exist
        raise ValidationFailed("Only circles you belong to.", code="CIRCLE_NOT_FOUND", field="circleIds")
    return wanted


def create_loan_request(*, borrower: Any, amount: object, term_months: object, rate_bp: object, method: object,
                        purpose: object, circle_ids: object, funding_days: object, anonymous: object = True,
                        ) -> Loan:
    """A borrower asks for a loan shown in some of their circles; co-members fund it by pledging."""
    amount = wallet.validate_amount(amount)
    if not is_int(term_months) or not (loans_setting("MIN_TERM_MONTHS") <= term_months
                                        <= loans_setting("MAX_TERM_MONTHS")):
        raise TermInvalid(field="termMonths")
    if not is_int(rate_bp) or rate_bp < 0:
        raise ValidationFailed("The rate is a whole number of basis points.", code="RATE_INVALID", field="rateBp")
    if rate_bp > loans_setting("RATE_CAP_BP"):
        raise RateTooHigh(f"At most {loans_setting('RATE_CAP_BP')} bp a year.", field="rateBp")
    if method not in Loan.Method.values:
        raise ValidationFailed("Unknown repayment method.", code="METHOD_INVALID", field="method")
    if not isinstance(purpose, str) or not purpose.strip() or not is_clean_line(purpose) \
            or len(purpose) > loans_setting("PURPOSE_MAX_CHARS"):
        raise ValidationFailed("Say what the loan is for, in one line.", code="PURPOSE_INVALID", field="purpose")
    if not is_int(funding_days) or not 1 <= funding_days <= loans_setting("MAX_FUNDING_DAYS"):
        raise ValidationFailed("The funding period is 1 to MAX_FUNDING_DAYS days.", code="DEADLINE_INVALID",
                               field="fundingDays")
    if not isinstance(anonymous, bool):
        raise ValidationFailed("anonymous is true or false.", code="INVALID", field="anonymous")
    if amount % loans_setting("TICKET_FEN"):
        raise ValidationFailed("The amount is a whole multiple of the ticket.", code="NOT_TICKET_MULTIPLE",
                               field="amount")
    wanted = _member_circles(borrower.pk, circle_ids)
    check_eligible(borrower)
    with transaction.atomic():
        wallet.lock_accounts([wallet.ensure_wallet(user_id=borrower.pk).pk])  # one request at a time per user
        if amount > borrowing_limit(borrower.pk, wanted):
            raise OverLimit(field="amount")
        now = clock.now()
        loan = Loan.objects.create(
            borrower=borrower, amount=amount, term_months=term_months, rate_bp=rate_bp, method=method,
            purpose=purpose.strip(), anonymous=anonymous, pseudonym=f"{PSEUDONYM_PREFIX}·{secrets.token_hex(3)}",
            funding_deadline=now + dt.timedelta(days=funding_days), created_at=now)
        LoanCircle.objects.bulk_create([LoanCircle(loan=loan, circle_id=c) for c in wanted])
        post_loan_cards(loan, who=loan.pseudonym if anonymous else borrower.display_name)
        return loan


def cancel_loan_request(*, borrower: Any, loan_id: object) -> Loan:
    """The borrower withdraws a request before it is disbursed: every pledge's hold is voided."""
    with transaction.atomic():
        loan = lock_loan(loan_id)
        if loan.borrower_id != borrower.pk:
            raise NotFound(field="loanId")  # someone else's loan is answered like a missing one
        if loan.status != Loan.Status.FUNDING:
            raise LoanClosed(field="loanId")
        lenders = lender_ids(loan)
        void_pledges(loan, reason="cancel")
        loan.status, loan.closed_at = Loan.Status.CANCELLED, clock.now()
        loan.save(update_fields=["status", "closed_at", "funded"])
        refresh_loan_cards(loan)
        tell(lenders, loan=loan, event="loans.request_cancelled", title="借款请求已取消",
             body=f"{loan.pseudonym} 取消了借款请求，你的出借金额已解冻。")
        return loan

