"""Every write of the loans app, one function per use case; import from `backend.loans.services`."""

from ._common import (
    LenderBlacklisted,
    LoanClosed,
    NotATicketMultiple,
    NotEligible,
    OverFunding,
    OverLimit,
    OverRepayment,
    OwnLoan,
    RateTooHigh,
    TermInvalid,
)
from .arrears import bucket, days_overdue, default_loan, scan_loans
from .funding import disburse, expire_unfunded_requests, pledge
from .repayment import payoff_amount, repay
from .requests import borrowing_limit, cancel_loan_request, check_eligible, create_loan_request

__all__ = [
    "LenderBlacklisted", "LoanClosed", "NotATicketMultiple", "NotEligible", "OverFunding", "OverLimit",
    "OverRepayment", "OwnLoan", "RateTooHigh", "TermInvalid", "borrowing_limit", "bucket", "cancel_loan_request",
    "check_eligible", "create_loan_request", "days_overdue", "default_loan", "disburse",
    "expire_unfunded_requests", "payoff_amount", "pledge", "repay", "scan_loans",
]
