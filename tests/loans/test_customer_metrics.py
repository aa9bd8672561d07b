"""Loans repaid in full feed the advisors app's customer tiers through core.customer_metrics (advisors may not
import loans): a borrower who paid off counts, one still repaying does not."""

from __future__ import annotations

import pytest

from backend.core import customer_metrics
from backend.loans import services
from backend.loans.models import Loan

from .conftest import YUAN, fund, request

pytestmark = pytest.mark.django_db


def test_a_loan_paid_off_counts_toward_loans_repaid(people):
    borrower, lenders, outsider = people["borrower"], people["lenders"], people["outsider"]
    loan = request(borrower, people["circle"])
    for n, (lender, part) in enumerate(zip(lenders, (1_000 * YUAN, 1_500 * YUAN, 500 * YUAN), strict=True)):
        services.pledge(lender=lender, loan_id=loan.pk, amount=part, idempotency_key=f"metric-pledge-{n}")
    assert customer_metrics.measure(customer_metrics.LOANS_REPAID, [borrower.pk]) == {borrower.pk: 0}
    loan.refresh_from_db()
    fund(borrower, 500 * YUAN)
    services.repay(borrower=borrower, loan_id=loan.pk, amount=services.payoff_amount(loan),
                   idempotency_key="metric-payoff-1")
    assert Loan.objects.get(pk=loan.pk).status == Loan.Status.REPAID
    assert customer_metrics.measure(customer_metrics.LOANS_REPAID, [borrower.pk, outsider.pk]) == {
        borrower.pk: 1, outsider.pk: 0}
