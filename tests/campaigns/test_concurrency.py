"""PostgreSQL, threads: draws racing never pass prize stock or budget; a coupon racing redemptions pays once;
claims never pass stock; points balances always equal the sum of their entries.

200 users draw once each, spread over 24 threads (each thread draws for its users in turn): six helpers share
one PostgreSQL, so 200 simultaneous connections would pass its connection limit."""

from __future__ import annotations

import itertools
import threading

import pytest
from django.db import connection

from backend.campaigns import selectors, services
from backend.campaigns.models import Coupon, Draw, PointsEntry, Prize
from backend.core.errors import DomainError
from tests.conftest import race

from .conftest import (
    activity,
    add_prize,
    assert_ledgers_ok,
    fund_marketing,
    give_points,
    make_campaign,
    make_coupon_type,
    marketing_balance,
    new_user,
    wallet_balance,
)

pytestmark = pytest.mark.django_db(transaction=True)
THREADS = 24


def _attempt(fn):
    """Run fn; return its result or the DomainError code (so race() collects every thread's answer)."""
    def run():
        try:
            return fn()
        except DomainError as exc:
            return exc.code
    return run


def test_200_users_drawing_at_once_never_pass_prize_stock_or_budget(require_postgres):
    fund_marketing(10_000_000)
    campaign = make_campaign(no_prize_weight=2, budget=15_000, draw_cost_points=5)
    cash = add_prize(campaign, kind=Prize.Kind.CASH, cash_amount=1_000, weight=4, stock=40)  # budget: 15 at most
    points = add_prize(campaign, kind=Prize.Kind.POINTS, points=50, weight=3, stock=20)
    coupons = add_prize(campaign, kind=Prize.Kind.COUPON, coupon_type=make_coupon_type(claimable=False),
                        weight=3, stock=10)
    users = [new_user() for _ in range(200)]
    for user in users:
        give_points(user, 5)  # one draw each
    before = marketing_balance()
    queues = [users[i::THREADS] for i in range(THREADS)]
    counter = itertools.count()
    lock = threading.Lock()

    def drawer():
        with lock:
            mine = queues[next(counter)]
        answers = []
        for user in mine:
            answers.append(_attempt(lambda u=user: services.draw(user=u, campaign_id=campaign.pk))())
            # back to the pool between draws: more threads than pooled connections (DATABASE_POOL_MAX_SIZE)
            # would otherwise wait out the pool's timeout while the others hold theirs for all their draws
            connection.close()
        return answers

    answers = [a for batch in race(drawer, THREADS, timeout=300) for a in batch]  # serialized draws, slow CI
    assert len(answers) == 200
    assert all(isinstance(a, Draw) for a in answers), {a for a in answers if not isinstance(a, Draw)}
    campaign.refresh_from_db()
    for prize in (cash, points, coupons):
        prize.refresh_from_db()
        assert prize.awarded <= prize.stock
        assert Draw.objects.filter(prize=prize).count() == prize.awarded
    assert points.awarded == 20 and coupons.awarded == 10  # ~50 slots each expected in 200 draws
    assert cash.awarded == 15 and campaign.spent == 15_000 == before - marketing_balance()
    assert Draw.objects.filter(outcome=Draw.Outcome.OVER_BUDGET).exists()
    assert Coupon.objects.filter(coupon_type=coupons.coupon_type).count() == 10
    assert sum(wallet_balance(u) for u in users) == 15_000
    assert all(selectors.points_balance(u) >= 0 for u in users)
    assert_ledgers_ok()


def test_a_coupon_redeemed_under_racing_redemptions_pays_once(require_postgres):
    fund_marketing(1_000_000)
    ada = new_user()
    coupon = services.claim_coupon(user=ada, coupon_type_id=make_coupon_type(value=888).pk)
    refs = iter(range(THREADS))
    lock = threading.Lock()

    def redeem():
        with lock:
            n = next(refs)
        return _attempt(lambda: services.redeem_coupon(user=ada, coupon_id=coupon.pk, reference=f"transfer:{n}"))()

    answers = race(redeem, THREADS)
    wins = [a for a in answers if not isinstance(a, str)]
    assert len(wins) == 1 and not wins[0][1]
    assert sorted(set(a for a in answers if isinstance(a, str))) == ["COUPON_ALREADY_REDEEMED"]
    assert wallet_balance(ada) == 888
    # the same reference racing: every caller gets the one redemption back, paid once
    other = services.claim_coupon(user=new_user(), coupon_type_id=make_coupon_type(value=100).pk)
    same = race(_attempt(lambda: services.redeem_coupon(user=other.owner, coupon_id=other.pk, reference="r:1")),
                THREADS)
    assert len(same) == THREADS and sum(1 for _, replayed in same if not replayed) == 1
    assert wallet_balance(other.owner) == 100
    assert_ledgers_ok()


def test_racing_staff_issues_under_one_key_give_one_coupon_within_stock(require_postgres):
    staff, ada = new_user("运营"), new_user()
    staff.is_staff = True
    staff.save()
    kind = make_coupon_type(stock=3, per_user_limit=THREADS, claimable=False)
    same = race(_attempt(lambda: services.issue_coupon(staff=staff, user_id=ada.pk, coupon_type_id=kind.pk,
                                                       reason="补偿", idempotency_key="race-grant-1")), THREADS)
    assert len(same) == THREADS and sum(1 for _, replayed in same if not replayed) == 1
    assert len({coupon.pk for coupon, _ in same}) == 1
    keys = itertools.count()
    lock = threading.Lock()

    def issue():
        with lock:
            n = next(keys)
        return _attempt(lambda: services.issue_coupon(staff=staff, user_id=ada.pk, coupon_type_id=kind.pk,
                                                      reason="补偿", idempotency_key=f"race-grant-{n + 2}"))()

    answers = race(issue, THREADS)
    assert answers.count("COUPON_OUT_OF_STOCK") == THREADS - 2
    kind.refresh_from_db()
    assert kind.claimed_count == 3 == Coupon.objects.filter(coupon_type=kind).count()


def test_racing_claims_never_pass_the_stock(require_postgres):
    kind = make_coupon_type(stock=5, per_user_limit=THREADS)
    ada = new_user()
    answers = race(_attempt(lambda: services.claim_coupon(user=ada, coupon_type_id=kind.pk)), THREADS)
    assert sum(1 for a in answers if isinstance(a, Coupon)) == 5
    assert answers.count("COUPON_OUT_OF_STOCK") == THREADS - 5
    kind.refresh_from_db()
    assert kind.claimed_count == 5 == Coupon.objects.filter(coupon_type=kind).count()


def test_points_balances_equal_their_entries_under_racing_earns_spends_and_reports(require_postgres, transfer_rule):
    ada = new_user()
    give_points(ada, 100)
    n = itertools.count()
    lock = threading.Lock()

    def mixed():
        with lock:
            i = next(n)
        if i % 3 == 0:
            return _attempt(lambda: services.spend_points(user_id=ada.pk, points=30, reference=f"s:{i}", memo=""))()
        if i % 3 == 1:  # the same report from many workers: one earn
            return _attempt(lambda: activity(ada, amount=5_000, reference="same-transfer"))()
        return _attempt(lambda: activity(ada, amount=1_000, reference=f"t:{i}"))()

    answers = race(mixed, THREADS)
    assert len(answers) == THREADS
    spends = PointsEntry.objects.filter(kind="spend").count()
    assert answers.count("INSUFFICIENT_POINTS") == THREADS // 3 - spends
    assert PointsEntry.objects.filter(reference="activity:same-transfer").count() == 1
    earned = 100 + (5 + 50) + (THREADS // 3) * (5 + 10)
    assert selectors.points_balance(ada) == earned - 30 * spends
    assert_ledgers_ok()
    connection.close()
