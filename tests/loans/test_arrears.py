"""Arrears: reminders, penalty after grace, default → reveal (audited) → blacklist → recovery, write-off;
referral boosts paid from the marketing budget; the scans run through `manage.py run_due_jobs --at`."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command

from backend.chat.models import Message
from backend.circles import selectors as circles
from backend.circles.models import LoanOutcome
from backend.core import clock
from backend.loans import services
from backend.loans.models import Loan, Pledge, RevealAudit
from backend.notifications.models import Notification
from backend.referrals.models import RateBoost
from backend.wallet.models import LedgerAccount

from .conftest import YUAN, assert_ledger_ok, available, codes, fund, fund_marketing, request

pytestmark = pytest.mark.django_db


def active_loan(people, **overrides):
    loan = request(people["borrower"], people["circle"], **overrides)
    parts = (1_000 * YUAN, 1_500 * YUAN, 500 * YUAN)
    for n, (lender, part) in enumerate(zip(people["lenders"], parts, strict=True)):
        services.pledge(lender=lender, loan_id=loan.pk, amount=part, idempotency_key=f"pledge-key-{n}")
    loan.refresh_from_db()
    assert loan.status == Loan.Status.ACTIVE
    return loan


def run_jobs(day: dt.date) -> None:
    call_command("run_due_jobs", "--at", f"{day.isoformat()}T12:00:00+00:00")


def events_of(user) -> list[str]:
    return list(Notification.objects.filter(recipient=user).values_list("event", flat=True))


def test_default_reveals_blacklists_and_recovery_is_recorded(people):
    borrower, lenders, circle = people["borrower"], people["lenders"], people["circle"]
    loan = active_loan(people, term_months=3)
    first = loan.instalments.get(number=1)
    run_jobs(first.due_date - dt.timedelta(days=2))
    run_jobs(first.due_date - dt.timedelta(days=1))  # once only
    assert events_of(borrower).count("loans.due_soon") == 1
    run_jobs(first.due_date)
    assert events_of(borrower).count("loans.due_today") == 1
    run_jobs(first.due_date + dt.timedelta(days=3))  # within grace: no penalty yet
    first.refresh_from_db()
    assert first.penalty == 0
    assert services.bucket(services.days_overdue(loan, first.due_date + dt.timedelta(days=3))) == "1-30"
    run_jobs(first.due_date + dt.timedelta(days=13))
    first.refresh_from_db()
    # 10 days × 15% a year (1000 bp × 150%) on the unpaid instalment
    assert first.penalty == round((first.principal + first.interest) * 1500 * 10 / 3_650_000)
    run_jobs(first.due_date + dt.timedelta(days=13))  # the same day again adds nothing
    first.refresh_from_db()
    assert first.penalty == round((first.principal + first.interest) * 1500 * 10 / 3_650_000)
    assert not RevealAudit.objects.exists() and not circles.is_blacklisted(borrower.pk)
    # identity stays hidden from lenders until the default
    for lender in lenders:
        for n in Notification.objects.filter(recipient=lender):
            assert borrower.display_name not in f"{n.title}{n.body}{n.payload}"
    default_day = first.due_date + dt.timedelta(days=30)
    run_jobs(default_day)
    loan.refresh_from_db()
    assert loan.status == Loan.Status.DEFAULTED
    assert circles.is_blacklisted(borrower.pk)
    audits = RevealAudit.objects.filter(loan=loan)
    assert {a.to_user_id for a in audits if a.to_user_id} == {u.pk for u in lenders}
    assert {a.to_circle_id for a in audits if a.to_circle_id} == {circle.pk}
    assert all(a.revealed_user_id == borrower.pk for a in audits)
    for lender in lenders:
        told = Notification.objects.get(recipient=lender, event="loans.defaulted")
        assert borrower.display_name in told.body
    notice = Message.objects.filter(conversation_id=circle.conversation_id, kind="system").order_by("-id").first()
    assert "公开通报" in str(notice.data) + notice.body
    assert LoanOutcome.objects.get(loan_ref=loan.ref).outcome == "defaulted"
    run_jobs(default_day)  # idempotent: no second reveal, no second notice
    assert RevealAudit.objects.filter(loan=loan).count() == audits.count()
    assert codes(request, borrower=borrower, circle=circle) == "BLACKLISTED"
    # paying off in full records the recovery; the blacklist stays until an admin lifts it
    with clock.frozen_at(dt.datetime.combine(default_day + dt.timedelta(days=1), dt.time(10), tzinfo=dt.UTC)):
        payoff = services.payoff_amount(loan)
        fund(borrower, payoff)
        services.repay(borrower=borrower, loan_id=loan.pk, amount=payoff, idempotency_key="recover-all")
    loan.refresh_from_db()
    assert loan.status == Loan.Status.REPAID and loan.recovered_at is not None
    assert LoanOutcome.objects.get(loan_ref=loan.ref).outcome == "late"
    assert circles.is_blacklisted(borrower.pk)
    assert sum(Pledge.objects.values_list("received", flat=True)) == \
        sum(r.amount for r in loan.repayments.all())
    assert_ledger_ok()


def test_write_off_after_the_configured_period(people, settings):
    settings.QUANZI_LOANS = {"DEFAULT_AFTER_DAYS": 10, "WRITE_OFF_AFTER_DAYS": 20}
    loan = active_loan(people, term_months=2)
    due = loan.instalments.get(number=1).due_date
    run_jobs(due + dt.timedelta(days=10))
    loan.refresh_from_db()
    assert loan.status == Loan.Status.DEFAULTED
    run_jobs(due + dt.timedelta(days=29))
    loan.refresh_from_db()
    assert loan.status == Loan.Status.DEFAULTED
    run_jobs(due + dt.timedelta(days=31))
    loan.refresh_from_db()
    assert loan.status == Loan.Status.WRITTEN_OFF


def test_referral_boost_is_paid_from_the_marketing_budget(people):
    borrower, lenders = people["borrower"], people["lenders"]
    now = clock.now()
    RateBoost.objects.create(user=lenders[0], scope="lending", bp=500, cap_bp=500, starts_at=now,
                             ends_at=now + dt.timedelta(days=365))
    fund_marketing(10_000 * YUAN)
    budget = LedgerAccount.objects.get(kind="marketing_budget").balance
    loan = active_loan(people, term_months=2)
    inst = loan.instalments.get(number=1)
    fund(borrower, inst.interest)
    before = available(borrower)
    services.repay(borrower=borrower, loan_id=loan.pk, amount=inst.principal + inst.interest,
                   idempotency_key="repay-one")
    assert available(borrower) == before - inst.principal - inst.interest  # the borrower pays no boost
    boosted = Pledge.objects.get(lender=lenders[0])
    exact_interest_share = inst.interest * boosted.amount / loan.amount
    assert abs(boosted.boost_received - exact_interest_share * 500 / 1000) <= 1
    assert boosted.boost_received > 0
    assert Pledge.objects.exclude(pk=boosted.pk).filter(boost_received__gt=0).count() == 0
    assert LedgerAccount.objects.get(kind="marketing_budget").balance == budget - boosted.boost_received
    # the first disbursed pledge of each lender was reported to referrals
    from backend.referrals.models import QualifyingEvent
    assert set(QualifyingEvent.objects.values_list("reference", flat=True)) == {
        f"loans:pledge:{p.pk}" for p in Pledge.objects.all()}
    assert_ledger_ok()


def test_the_scan_does_not_lock_loans_with_nothing_due(people):
    """Loans whose next instalment is beyond the reminder window cost the daily scan no per-loan work: its
    queries do not grow with them, while a loan due soon still gets its reminder."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def scan_queries(day: dt.date) -> tuple[int, int]:
        with CaptureQueriesContext(connection) as queries:
            changed = services.scan_loans(today=day)
        return changed, len(queries.captured_queries)

    loan = active_loan(people, term_months=3)
    due = loan.instalments.get(number=1).due_date
    quiet_day = due - dt.timedelta(days=10)
    assert scan_queries(quiet_day)[0] == 0
    _, with_one = scan_queries(quiet_day)
    for n in range(3):  # three more active loans, all far from due
        more = request(people["borrower"], people["circle"], term_months=3, amount=100 * YUAN)
        services.pledge(lender=people["lenders"][n], loan_id=more.pk, amount=100 * YUAN,
                        idempotency_key=f"quiet-pledge-{n}")
    assert scan_queries(quiet_day) == (0, with_one)
    changed, _ = scan_queries(due - dt.timedelta(days=2))  # inside the reminder window: all four are due
    assert changed == 4 and events_of(people["borrower"]).count("loans.due_soon") == 4
