"""PostgreSQL: lenders racing for the last part of a request never over-fund it, and the ledger balances."""

from __future__ import annotations

import pytest

from backend.core.errors import DomainError
from backend.loans import services
from backend.loans.models import Loan, Pledge
from tests.conftest import race

from .conftest import YUAN, assert_ledger_ok, available, circle_with, fund, new_user, request

pytestmark = pytest.mark.django_db(transaction=True)


def test_racing_pledges_never_over_fund(require_postgres):
    borrower = new_user("借款人")
    lenders = [new_user() for _ in range(12)]
    for lender in lenders:
        fund(lender, 1_000 * YUAN)
    circle = circle_with(borrower, *lenders)
    loan = request(borrower, circle, amount=1_000 * YUAN)
    services.pledge(lender=lenders[0], loan_id=loan.pk, amount=500 * YUAN, idempotency_key="first-pledge")
    # 11 lenders race for the last 500 yuan, each asking 200: at most two get in, then the rest is 100 …
    queue = iter(lenders[1:])
    import threading
    lock = threading.Lock()

    def contend():
        with lock:
            lender = next(queue)
        try:
            return services.pledge(lender=lender, loan_id=loan.pk, amount=200 * YUAN,
                                   idempotency_key=f"race-key-{lender.pk}").amount
        except DomainError as exc:
            return exc.code

    results = race(contend, threads=11)
    assert len(results) == 11
    won = [r for r in results if isinstance(r, int)]
    assert len(won) == 2 and set(results) - {200 * YUAN} == {"OVER_FUNDING"}
    loan.refresh_from_db()
    assert loan.funded == 900 * YUAN and loan.status == Loan.Status.FUNDING
    # the last 100 yuan, raced by everyone who lost: exactly one completes it and disburses once
    losers = [lender for lender in lenders[1:] if not Pledge.objects.filter(lender=lender).exists()]
    queue2 = iter(losers)

    def last():
        with lock:
            lender = next(queue2)
        try:
            return services.pledge(lender=lender, loan_id=loan.pk, amount=100 * YUAN,
                                   idempotency_key=f"last-key-{lender.pk}").amount
        except DomainError as exc:
            return exc.code

    results = race(last, threads=len(losers))
    assert sorted(map(str, results)).count(str(100 * YUAN)) == 1
    assert set(r for r in results if not isinstance(r, int)) == {"LOAN_NOT_OPEN"}
    loan.refresh_from_db()
    assert loan.status == Loan.Status.ACTIVE and loan.funded == loan.amount
    assert available(borrower) == loan.amount
    assert sum(p.amount for p in Pledge.objects.filter(status="posted")) == loan.amount
    assert not Pledge.objects.filter(status="held").exists()
    assert_ledger_ok()
