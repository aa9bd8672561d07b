"""PostgreSQL: concurrent qualifications for one referrer never pass the cap or the budget, and concurrent
scans grant each reward once."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection, transaction

from backend.core import clock
from backend.referrals import selectors, services
from backend.referrals.models import Campaign, QualifyingEvent, Reward
from backend.referrals.services import rewards

from .conftest import assert_ledger_ok, fund_marketing, make_campaign, new_user, pledge, refer

pytestmark = pytest.mark.django_db(transaction=True)
THREADS = 12


def run_together(jobs) -> list[BaseException]:
    start = threading.Barrier(len(jobs))
    escaped: list[BaseException] = []

    def worker(job) -> None:
        try:
            start.wait()
            job()
        except BaseException as exc:
            escaped.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return escaped


def _settle_one(event_id: int):
    """What the scan does for one event, so every event of the referrer is settled by its own thread."""

    def job() -> None:
        with transaction.atomic():
            event = QualifyingEvent.objects.select_for_update().get(pk=event_id)
            if event.status != QualifyingEvent.Status.HOLDING:
                return
            event.status = QualifyingEvent.Status.SETTLED
            event.save(update_fields=["status"])
            rewards.decide(event=event)
    return job


def test_concurrent_qualifications_for_one_referrer_never_pass_the_cap(require_postgres):
    fund_marketing(100_000_000)
    campaign = make_campaign(boost_bp=30, cap_bp=100, daily_rewards_per_referrer=100)
    referrer = new_user("Ada")
    events = [pledge(refer(referrer, campaign)) for _ in range(THREADS)]
    with clock.shifted(dt.timedelta(days=campaign.holding_days, minutes=1)):
        assert run_together([_settle_one(e.pk) for e in events]) == []
        assert selectors.active_boost_bp(referrer, "lending") == 100
    assert sum(Reward.objects.values_list("boost_bp", flat=True)) == 100
    assert Reward.objects.filter(status=Reward.Status.GRANTED).count() == THREADS  # bonuses all paid
    campaign.refresh_from_db()
    assert campaign.spent == sum(Reward.objects.values_list("welcome_amount", flat=True))
    assert_ledger_ok()


def test_concurrent_scans_and_a_tight_budget_pay_each_reward_once(require_postgres):
    fund_marketing(100_000_000)
    campaign = make_campaign(budget=5 * 10_000, welcome_min=10_000, welcome_max=10_000)
    referrers = [new_user() for _ in range(8)]
    for r in referrers:
        pledge(refer(r, campaign))
    with clock.shifted(dt.timedelta(days=campaign.holding_days, minutes=1)):
        assert run_together([services.process_due_qualifications for _ in range(4)]) == []
    assert Reward.objects.count() == 8
    assert Reward.objects.filter(status=Reward.Status.GRANTED).count() == 5
    assert set(Reward.objects.filter(status=Reward.Status.REJECTED).values_list("reason_code", flat=True)) == {
        "BUDGET_EXHAUSTED"}
    assert Campaign.objects.get(pk=campaign.pk).spent == 50_000
    assert_ledger_ok()


def test_reversals_racing_the_scan_leave_no_reward_standing_and_no_deadlock(require_postgres):
    fund_marketing(100_000_000)
    campaign = make_campaign(daily_rewards_per_referrer=100)
    referrer = new_user("Ada")
    events = [pledge(refer(referrer, campaign), reference=f"race:{n}") for n in range(6)]
    jobs = [services.process_due_qualifications, services.process_due_qualifications]
    jobs += [lambda ref=e.reference: services.reverse_qualifying_event(reference=ref) for e in events]
    with clock.shifted(dt.timedelta(days=campaign.holding_days, minutes=1)):
        assert run_together(jobs) == []
    assert set(QualifyingEvent.objects.values_list("status", flat=True)) == {"reversed"}
    assert not Reward.objects.filter(status=Reward.Status.GRANTED).exists()
    assert selectors.active_boost_bp(referrer, "lending") == 0
    clawed = Reward.objects.filter(status=Reward.Status.CLAWED_BACK)
    # Nobody opened their packet: each went back to the budget whole, nothing is owed.
    assert all((r.welcome_refunded, r.recovered_amount, r.owed_amount) == (r.welcome_amount, 0, 0) for r in clawed)
    assert Campaign.objects.get(pk=campaign.pk).spent == 0
    assert_ledger_ok()
