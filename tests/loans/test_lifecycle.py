"""A loan's whole life through the real services: request → pledges (holds) → disbursement through escrow →
schedule → repayments split among lenders → settled; plus cancel, expiry, early payoff and bad input."""

from __future__ import annotations

import datetime as dt

import pytest

from backend.circles import services as circles
from backend.core import clock
from backend.loans import services
from backend.loans.models import Instalment, LenderReceipt, Loan, Pledge
from backend.wallet.models import LedgerAccount

from .conftest import YUAN, assert_ledger_ok, available, circle_with, codes, fund, new_user, request, snapshot

pytestmark = pytest.mark.django_db


def escrow_balance() -> int:
    account = LedgerAccount.objects.filter(kind="loan_escrow").first()
    return account.balance if account else 0


def fund_fully(loan, lenders, parts=(1_000 * YUAN, 1_500 * YUAN, 500 * YUAN)):
    for n, (lender, part) in enumerate(zip(lenders, parts, strict=True)):
        services.pledge(lender=lender, loan_id=loan.pk, amount=part, idempotency_key=f"pledge-key-{n}")


def test_whole_life_on_time(people):
    borrower, lenders = people["borrower"], people["lenders"]
    loan = request(borrower, people["circle"])
    assert loan.status == Loan.Status.FUNDING and loan.pseudonym.startswith("匿名借款人")
    services.pledge(lender=lenders[0], loan_id=loan.pk, amount=1_000 * YUAN, idempotency_key="pledge-key-0")
    assert available(lenders[0]) == 9_000 * YUAN  # held, not moved
    assert escrow_balance() == 0
    # a replayed pledge is the same pledge
    services.pledge(lender=lenders[0], loan_id=loan.pk, amount=1_000 * YUAN, idempotency_key="pledge-key-0")
    assert Pledge.objects.count() == 1
    services.pledge(lender=lenders[1], loan_id=loan.pk, amount=1_500 * YUAN, idempotency_key="pledge-key-1")
    services.pledge(lender=lenders[2], loan_id=loan.pk, amount=500 * YUAN, idempotency_key="pledge-key-2")
    loan.refresh_from_db()
    assert loan.status == Loan.Status.ACTIVE and loan.funded == loan.amount
    assert available(borrower) == 3_000 * YUAN and escrow_balance() == 0
    assert all(p.status == "posted" for p in Pledge.objects.all())
    lines = list(loan.instalments.order_by("number"))
    assert len(lines) == 12 and sum(i.principal for i in lines) == loan.amount
    assert lines[0].due_date > clock.now().date() and lines[-1].due_date > lines[0].due_date
    fund(borrower, 500 * YUAN)  # interest money
    for n, inst in enumerate(lines):
        with clock.frozen_at(dt.datetime.combine(inst.due_date, dt.time(9), tzinfo=dt.UTC)):
            services.repay(borrower=borrower, loan_id=loan.pk, amount=inst.principal + inst.interest,
                           idempotency_key=f"repay-{n:04d}")
    loan.refresh_from_db()
    assert loan.status == Loan.Status.REPAID
    total = sum(i.principal + i.interest for i in lines)
    received = {p.lender_id: p.received for p in Pledge.objects.all()}
    assert sum(received.values()) == total
    for p in Pledge.objects.all():  # each lender within 1 fen of their exact share
        assert abs(p.received - total * p.amount / loan.amount) < 1
    assert escrow_balance() == 0
    assert_ledger_ok()
    from backend.circles.models import LoanOutcome
    assert list(LoanOutcome.objects.values_list("outcome", flat=True)) == ["on_time"]


def test_partial_and_early_payoff_charge_interest_only_to_date(people):
    borrower, lenders = people["borrower"], people["lenders"]
    loan = request(borrower, people["circle"], term_months=6)
    fund_fully(loan, lenders)
    loan.refresh_from_db()
    first = loan.instalments.get(number=1)
    fund(borrower, 200 * YUAN)
    # a partial repayment before the due date goes to the first instalment's interest, then principal
    services.repay(borrower=borrower, loan_id=loan.pk, amount=first.interest + 100, idempotency_key="partial-1")
    first.refresh_from_db()
    assert first.paid_interest == first.interest and first.paid_principal == 100 and first.paid_at is None
    # halfway through the first period, the payoff is the principal left plus no more interest than earned
    with clock.frozen_at(clock.now() + dt.timedelta(days=15)):
        payoff = services.payoff_amount(loan)
        assert payoff == loan.amount - 100  # interest to date already paid by the partial repayment
        assert codes(services.repay, borrower=borrower, loan_id=loan.pk, amount=payoff + 1,
                     idempotency_key="too-much-1") == "OVER_REPAYMENT"
        services.repay(borrower=borrower, loan_id=loan.pk, amount=payoff, idempotency_key="payoff-1")
    loan.refresh_from_db()
    assert loan.status == Loan.Status.REPAID
    full_interest = sum(i.interest for i in Instalment.objects.filter(loan=loan))
    paid_interest = sum(i.paid_interest for i in Instalment.objects.filter(loan=loan))
    assert paid_interest == first.interest < full_interest
    assert sum(r.amount for r in LenderReceipt.objects.all()) == loan.amount + first.interest
    assert_ledger_ok()


def test_cancel_and_expiry_void_every_hold(people):
    borrower, lenders = people["borrower"], people["lenders"]
    loan = request(borrower, people["circle"])
    services.pledge(lender=lenders[0], loan_id=loan.pk, amount=1_000 * YUAN, idempotency_key="pledge-key-0")
    services.cancel_loan_request(borrower=borrower, loan_id=loan.pk)
    assert available(lenders[0]) == 10_000 * YUAN
    assert codes(services.pledge, lender=lenders[1], loan_id=loan.pk, amount=100 * YUAN,
                 idempotency_key="pledge-key-1") == "LOAN_NOT_OPEN"
    loan2 = request(borrower, people["circle"])
    services.pledge(lender=lenders[1], loan_id=loan2.pk, amount=2_000 * YUAN, idempotency_key="pledge-key-9")
    assert services.expire_unfunded_requests() == 0  # not yet
    with clock.frozen_at(loan2.funding_deadline):
        assert services.expire_unfunded_requests() == 1
        assert services.expire_unfunded_requests() == 0  # idempotent
    loan2.refresh_from_db()
    assert loan2.status == Loan.Status.EXPIRED and available(lenders[1]) == 10_000 * YUAN
    assert_ledger_ok()


def test_bad_input_gets_clear_codes_and_moves_nothing(people):
    borrower, lenders, outsider = people["borrower"], people["lenders"], people["outsider"]
    circle = people["circle"]
    assert codes(request, borrower=borrower, circle=circle, rate_bp=1201) == "RATE_OVER_CAP"
    assert codes(request, borrower=borrower, circle=circle, term_months=0) == "TERM_INVALID"
    assert codes(request, borrower=borrower, circle=circle, term_months=600) == "TERM_INVALID"
    assert codes(request, borrower=borrower, circle=circle, amount=1_000_000 * YUAN) == "OVER_LIMIT"
    other = circle_with(outsider)
    assert codes(request, borrower=borrower, circle=circle, circle_ids=[other.pk]) == "CIRCLE_NOT_FOUND"
    unverified = new_user(kyc=1)
    circles.join_circle(user=unverified, circle_id=circle.pk)
    assert codes(request, borrower=unverified, circle=circle) == "KYC_REQUIRED"
    assert Loan.objects.count() == 0
    loan = request(borrower, circle)
    poor = new_user()
    before = snapshot()
    assert codes(services.pledge, lender=lenders[0], loan_id=loan.pk, amount=150 * YUAN,
                 idempotency_key="pledge-key-0") == "NOT_TICKET_MULTIPLE"
    assert codes(services.pledge, lender=outsider, loan_id=loan.pk, amount=100 * YUAN,
                 idempotency_key="pledge-key-0") == "NOT_FOUND"  # not in the circle: as if missing
    assert codes(services.pledge, lender=lenders[0], loan_id=loan.pk + 999, amount=100 * YUAN,
                 idempotency_key="pledge-key-0") == "NOT_FOUND"
    assert codes(services.pledge, lender=borrower, loan_id=loan.pk, amount=100 * YUAN,
                 idempotency_key="pledge-key-0") == "OWN_LOAN"
    assert codes(services.pledge, lender=lenders[0], loan_id=loan.pk, amount=3_100 * YUAN,
                 idempotency_key="pledge-key-0") == "OVER_FUNDING"
    circles.join_circle(user=poor, circle_id=circle.pk)
    assert codes(services.pledge, lender=poor, loan_id=loan.pk, amount=100 * YUAN,
                 idempotency_key="pledge-key-0") == "INSUFFICIENT_FUNDS"
    assert codes(services.repay, borrower=lenders[0], loan_id=loan.pk, amount=100,
                 idempotency_key="repay-0000") == "NOT_FOUND"  # someone else's loan
    assert codes(services.cancel_loan_request, borrower=lenders[0], loan_id=loan.pk) == "NOT_FOUND"
    assert codes(services.repay, borrower=borrower, loan_id=loan.pk, amount=100,
                 idempotency_key="repay-0001") == "LOAN_NOT_OPEN"  # nothing to repay before disbursement
    circles.blacklist_for_default(user=lenders[2], loan_ref="loan:elsewhere", circles=[])
    assert codes(services.pledge, lender=lenders[2], loan_id=loan.pk, amount=100 * YUAN,
                 idempotency_key="pledge-key-2") == "BLACKLISTED"
    after = snapshot()
    assert after == before, (after["accounts"], before["accounts"])


def test_fen_sized_repayments_keep_every_lender_within_a_fen_of_their_share(people):
    """Repayments smaller than a fen per lender, through the real money path: every receipt row, every
    pledge's running total and the ledger agree, and no lender is ever a fen or more off their exact share."""
    borrower, lenders = people["borrower"], people["lenders"]
    loan = request(borrower, people["circle"])
    fund_fully(loan, lenders, parts=(1_100 * YUAN, 1_100 * YUAN, 800 * YUAN))
    loan.refresh_from_db()
    paid = 0
    for n, amount in enumerate([1, 1, 2, 1, 1, 1, 5, 1, 2, 1, 10_007]):
        services.repay(borrower=borrower, loan_id=loan.pk, amount=amount, idempotency_key=f"tiny-{n:03d}")
        paid += amount
        pledges = list(Pledge.objects.filter(loan=loan).order_by("id"))
        assert sum(p.received for p in pledges) == paid
        for p in pledges:
            assert abs(p.received * loan.amount - paid * p.amount) < loan.amount  # |received - exact| < 1 fen
            assert p.received == sum(LenderReceipt.objects.filter(pledge=p).values_list("amount", flat=True))
    assert min(LenderReceipt.objects.values_list("amount", flat=True)) >= 0
    assert_ledger_ok()
