"""PostgreSQL: the welcome red packet's money paths racing each other — the referee opening it while the
reward is clawed back or the packet expires, and many welcome packets paid from one tight budget. Invariants:
the ledger sums to zero, the marketing budget and the campaign never go below zero, and each packet's money
ends in exactly one place."""

from __future__ import annotations

import datetime as dt

import pytest

from backend.core import clock
from backend.core.errors import DomainError
from backend.payments import services as payments
from backend.payments.models import RedPacket
from backend.referrals import services
from backend.referrals.models import Campaign, Reward
from backend.wallet import services as wallet
from backend.wallet.models import LedgerAccount

from .conftest import (
    assert_ledger_ok,
    balance_of,
    fund_marketing,
    make_campaign,
    marketing_balance,
    new_user,
    pledge,
    refer,
)
from .test_concurrency import run_together

pytestmark = pytest.mark.django_db(transaction=True)
PAIRS = 6


def _grab(user, packet_id):
    def job():
        try:
            payments.grab_red_packet(user=user, packet_id=packet_id)
        except DomainError:
            pass  # PACKET_CLOSED: the clawback or the expiry won
    return job


def _granted(campaign, n: int) -> list[Reward]:
    referrer = new_user("Ada")
    for i in range(n):
        pledge(refer(referrer, campaign), reference=f"race-w:{campaign.pk}:{i}")
    clock.advance(dt.timedelta(days=campaign.holding_days, minutes=1))
    services.process_due_qualifications()
    return list(Reward.objects.filter(campaign=campaign, status=Reward.Status.GRANTED).order_by("id"))


def _each_packet_ends_in_one_place(rewards: list[Reward]) -> None:
    for reward in rewards:
        reward.refresh_from_db()
        packet = RedPacket.objects.get(pk=reward.welcome_packet_id)
        assert packet.grabbed_amount + packet.refunded_amount == packet.total == reward.welcome_amount
        assert reward.welcome_refunded == packet.refunded_amount
        if packet.grabbed_amount:  # opened first: recovered from the wallet (nobody spent it)
            assert reward.recovered_amount == packet.grabbed_amount and balance_of(reward.referee) == 0
        else:
            assert reward.recovered_amount == 0 and balance_of(reward.referee) == 0
        assert reward.owed_amount == 0


def test_opening_races_the_clawback(require_postgres):
    fund_marketing(100_000_000)
    before = marketing_balance()
    campaign = make_campaign(daily_rewards_per_referrer=100)
    rewards = _granted(campaign, PAIRS)
    jobs = []
    for reward in rewards:
        jobs.append(_grab(reward.referee, reward.welcome_packet_id))
        jobs.append(lambda ref=reward.event.reference: services.reverse_qualifying_event(reference=ref))
    assert run_together(jobs) == []
    _each_packet_ends_in_one_place(rewards)
    assert set(Reward.objects.values_list("status", flat=True)) == {"clawed_back"}
    assert Campaign.objects.get(pk=campaign.pk).spent == 0
    assert marketing_balance() == before
    assert wallet.system_account(LedgerAccount.Kind.PAYMENTS_ESCROW).balance == 0
    assert_ledger_ok()


def test_opening_races_the_expiry_scan(require_postgres):
    fund_marketing(100_000_000)
    campaign = make_campaign(daily_rewards_per_referrer=100)
    rewards = _granted(campaign, PAIRS)
    clock.advance(dt.timedelta(hours=24))  # the packets are due now
    jobs = [_grab(r.referee, r.welcome_packet_id) for r in rewards] + [payments.expire_red_packets] * 2
    assert run_together(jobs) == []  # an expired packet cannot be opened, whatever the order
    payments.expire_red_packets()  # idempotent: nothing is refunded twice
    for reward in rewards:
        reward.refresh_from_db()
        packet = RedPacket.objects.get(pk=reward.welcome_packet_id)
        assert packet.status in ("empty", "expired")
        assert packet.grabbed_amount + packet.refunded_amount == packet.total  # opened or refunded, not both
        assert reward.welcome_refunded == packet.refunded_amount
        assert balance_of(reward.referee) == packet.grabbed_amount
    refunded = sum(Reward.objects.filter(campaign=campaign).values_list("welcome_refunded", flat=True))
    assert Campaign.objects.get(pk=campaign.pk).spent == sum(r.welcome_amount for r in rewards) - refunded
    assert_ledger_ok()


def test_many_welcome_packets_from_a_tight_budget_never_overdraw_it(require_postgres):
    fund_marketing(3 * 10_000 + 5_000)  # the marketing account covers three packets
    campaign = make_campaign(budget=10_000_000, welcome_min=10_000, welcome_max=10_000)
    referrers = [new_user() for _ in range(8)]
    for n, referrer in enumerate(referrers):
        pledge(refer(referrer, campaign), reference=f"tight:{n}")
    with clock.shifted(dt.timedelta(days=campaign.holding_days, minutes=1)):
        assert run_together([services.process_due_qualifications] * 4) == []
    granted = Reward.objects.filter(status=Reward.Status.GRANTED)
    assert granted.count() == 3 == RedPacket.objects.count()
    assert set(Reward.objects.exclude(status="granted").values_list("reason_code", flat=True)) == {"BUDGET_EXHAUSTED"}
    assert marketing_balance() == 5_000 and Campaign.objects.get(pk=campaign.pk).spent == 30_000
    assert_ledger_ok()
