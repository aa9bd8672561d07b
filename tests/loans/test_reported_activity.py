"""A repaid instalment is reported to campaigns (core.activity_hooks) after it commits: it earns the
borrower points by an active rule; replaying the repayment earns nothing twice."""

from __future__ import annotations

import pytest

from backend.campaigns import services as campaigns
from backend.campaigns.models import Activity, PointsRule
from backend.loans import services

from .conftest import YUAN, assert_ledger_ok, fund, request

pytestmark = pytest.mark.django_db


def test_a_repaid_instalment_earns_points_once(people, django_capture_on_commit_callbacks):
    borrower, lenders = people["borrower"], people["lenders"]
    PointsRule.objects.create(activity_kind="loan_repayment", min_amount=100, fixed_points=20, points_per_yuan=0,
                              valid_days=30)
    loan = request(borrower, people["circle"])
    for n, (lender, part) in enumerate(zip(lenders, (1_000 * YUAN, 1_500 * YUAN, 500 * YUAN), strict=True)):
        services.pledge(lender=lender, loan_id=loan.pk, amount=part, idempotency_key=f"pledge-key-{n}")
    fund(borrower, 500 * YUAN)
    first = loan.instalments.order_by("number").first()
    with django_capture_on_commit_callbacks(execute=True):
        repayment = services.repay(borrower=borrower, loan_id=loan.pk, amount=first.principal + first.interest,
                                   idempotency_key="repay-0001")
    assert campaigns.points_account(borrower.pk).balance == 20
    assert Activity.objects.get(user=borrower).reference == f"loans:repayment:{repayment.pk}"
    with django_capture_on_commit_callbacks(execute=True):
        again = services.repay(borrower=borrower, loan_id=loan.pk, amount=first.principal + first.interest,
                               idempotency_key="repay-0001")
    assert again.pk == repayment.pk
    assert campaigns.points_account(borrower.pk).balance == 20 and Activity.objects.count() == 1
    assert all(campaigns.points_account(lender.pk).balance == 0 for lender in lenders)
    assert_ledger_ok()
