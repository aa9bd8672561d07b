"""Operations read loans in the admin (arrears column), and cannot edit them there."""

from __future__ import annotations

import datetime as dt

import pytest

from backend.loans import services
from backend.loans.models import Loan

from .conftest import YUAN, request

pytestmark = pytest.mark.django_db


def test_admin_lists_loans_with_arrears_and_is_read_only(ops, people):
    client, _staff = ops
    loan = request(people["borrower"], people["circle"], term_months=2)
    for n, lender in enumerate(people["lenders"]):
        services.pledge(lender=lender, loan_id=loan.pk, amount=1_000 * YUAN, idempotency_key=f"pledge-key-{n}")
    loan.refresh_from_db()
    due = loan.instalments.get(number=1).due_date
    services.scan_loans(today=due + dt.timedelta(days=5))
    from backend.core import clock
    with clock.frozen_at(dt.datetime.combine(due + dt.timedelta(days=5), dt.time(12), tzinfo=dt.UTC)):
        page = client.get("/admin/loans/loan/")
    assert page.status_code == 200
    text = page.content.decode()
    assert loan.pseudonym in text and "5 (1-30)" in text
    assert client.post(f"/admin/loans/loan/{loan.pk}/change/", {"status": "repaid"}).status_code in (302, 403)
    assert Loan.objects.get(pk=loan.pk).status == Loan.Status.ACTIVE
