"""Shared pieces of the loans services: errors with stable codes, locking, visibility, notices."""

from __future__ import annotations

from typing import Any

from backend.circles.models import CircleMember
from backend.core.errors import Conflict, DomainError, NotFound, ValidationFailed
from backend.core.ids import encode_id
from backend.notifications.services import notify

from ..models import Loan

TYPE = "LoanRequest"  # the id lenders and borrowers both may resolve (node)


class RateTooHigh(ValidationFailed):
    code = "RATE_OVER_CAP"
    default_message = "The annual rate is above the cap."


class TermInvalid(ValidationFailed):
    code = "TERM_INVALID"
    default_message = "The term is a whole number of months within the allowed range."


class NotATicketMultiple(ValidationFailed):
    code = "NOT_TICKET_MULTIPLE"
    default_message = "A pledge is a whole multiple of the minimum ticket."


class NotEligible(DomainError):
    code = "NOT_ELIGIBLE"
    default_message = "You cannot borrow right now."


class OverLimit(ValidationFailed):
    code = "OVER_LIMIT"
    default_message = "The amount is above your borrowing limit in these circles."


class LoanClosed(Conflict):
    code = "LOAN_NOT_OPEN"
    default_message = "The loan is not in a state that allows this."


class OverFunding(Conflict):
    code = "OVER_FUNDING"
    default_message = "The pledge is more than what is left to fund."


class OwnLoan(Conflict):
    code = "OWN_LOAN"
    default_message = "You cannot lend to your own request."


class LenderBlacklisted(DomainError):
    code = "BLACKLISTED"
    default_message = "Blacklisted users cannot lend or borrow."


class OverRepayment(ValidationFailed):
    code = "OVER_REPAYMENT"
    default_message = "The amount is more than the loan's outstanding balance."


def gid(loan: Loan) -> str:
    return encode_id(TYPE, loan.pk)


def lock_loan(loan_id: object, *, field: str = "loanId") -> Loan:
    """The loan row locked (the order everywhere: loan, then wallet accounts inside wallet.services)."""
    if not isinstance(loan_id, int):
        raise NotFound(field=field)
    loan = Loan.objects.select_for_update().filter(pk=loan_id).first()
    if loan is None:
        raise NotFound(field=field)
    return loan


def circle_ids_of(loan: Loan) -> list[int]:
    return list(loan.shown_in.order_by("circle_id").values_list("circle_id", flat=True))


def may_see(loan: Loan, user_id: int) -> bool:
    """A lender sees a request only as an active co-member of one of the circles it is shown in."""
    return CircleMember.objects.filter(circle_id__in=circle_ids_of(loan), user_id=user_id,
                                       left_at__isnull=True).exists()


def lender_ids(loan: Loan) -> list[int]:
    return sorted(set(loan.pledges.exclude(status="voided").values_list("lender_id", flat=True)))


def tell(user_ids: list[int], *, loan: Loan, event: str, title: str, body: str, **extra: Any) -> None:
    """A notification whose payload names the loan by global id and pseudonym only (never the borrower)."""
    payload = {"loan_id": gid(loan), "pseudonym": loan.pseudonym, **extra}
    for user_id in user_ids:
        notify(recipient_id=user_id, kind="loan", event=event, title=title, body=body, payload=payload,
               collapse_key=f"loan:{loan.pk}:{event}")


def clean_key(value: object) -> str:
    """A client's idempotency key for a pledge or repayment (replays return the first result)."""
    if not isinstance(value, str) or not 8 <= len(value) <= 64:
        raise ValidationFailed("An idempotency key of 8-64 characters.", code="IDEMPOTENCY_KEY_INVALID",
                               field="idempotencyKey")
    return value
