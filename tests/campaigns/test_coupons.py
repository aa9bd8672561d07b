"""Coupons: claim within stock, validity, eligibility and the per-user limit; redeem exactly once; cash-back
from the marketing budget, which never goes negative; expiry."""

from __future__ import annotations

import datetime as dt

import pytest

from backend.campaigns import services
from backend.campaigns.models import Campaign, Coupon
from backend.core import clock

from .conftest import (
    assert_ledgers_ok,
    fund_marketing,
    make_campaign,
    make_coupon_type,
    marketing_balance,
    new_user,
    wallet_balance,
)
from .conftest import (
    error_code as _code,
)

pytestmark = pytest.mark.django_db


def test_claim_and_redeem_cash_back_pays_once_from_the_budget(budget):
    ada = new_user()
    coupon = services.claim_coupon(user=ada, coupon_type_id=make_coupon_type(value=500).pk)
    before = marketing_balance()
    redeemed, replayed = services.redeem_coupon(user=ada, coupon_id=coupon.pk, reference="transfer:9")
    assert (redeemed.status, replayed) == (Coupon.Status.REDEEMED, False)
    again, replayed = services.redeem_coupon(user=ada, coupon_id=coupon.pk, reference="transfer:9")
    assert replayed and again.cash_back_entry_id == redeemed.cash_back_entry_id
    assert _code(services.redeem_coupon, user=ada, coupon_id=coupon.pk, reference="transfer:10") \
        == "COUPON_ALREADY_REDEEMED"
    assert wallet_balance(ada) == 500
    assert marketing_balance() == before - 500
    assert_ledgers_ok()


def test_another_users_coupon_is_not_found_like_a_missing_one(budget):
    ada, eve = new_user(), new_user()
    coupon = services.claim_coupon(user=ada, coupon_type_id=make_coupon_type().pk)
    assert _code(services.redeem_coupon, user=eve, coupon_id=coupon.pk, reference="x:1") == "NOT_FOUND"
    assert _code(services.redeem_coupon, user=eve, coupon_id=coupon.pk + 999, reference="x:1") == "NOT_FOUND"
    coupon.refresh_from_db()
    assert coupon.status == Coupon.Status.AVAILABLE


def test_an_expired_coupon_cannot_be_redeemed_and_the_scan_marks_it(budget):
    ada = new_user()
    coupon = services.claim_coupon(user=ada, coupon_type_id=make_coupon_type().pk)
    clock.advance(dt.timedelta(days=31))
    assert _code(services.redeem_coupon, user=ada, coupon_id=coupon.pk, reference="x:1") == "COUPON_EXPIRED"
    assert wallet_balance(ada) == 0
    assert services.expire_coupons() == 1
    coupon.refresh_from_db()
    assert coupon.status == Coupon.Status.EXPIRED


def test_claims_respect_stock_per_user_limit_validity_and_eligibility(db):
    ada, bob = new_user(region="sh"), new_user(region="bj", tier="core")
    limited = make_coupon_type(stock=2, per_user_limit=1)
    services.claim_coupon(user=ada, coupon_type_id=limited.pk)
    assert _code(services.claim_coupon, user=ada, coupon_type_id=limited.pk) == "COUPON_LIMIT_REACHED"
    services.claim_coupon(user=bob, coupon_type_id=limited.pk)
    assert _code(services.claim_coupon, user=new_user(), coupon_type_id=limited.pk) == "COUPON_OUT_OF_STOCK"
    regional = make_coupon_type(eligible_regions="bj, gz", eligible_tiers="core")
    assert _code(services.claim_coupon, user=ada, coupon_type_id=regional.pk) == "NOT_ELIGIBLE"
    services.claim_coupon(user=bob, coupon_type_id=regional.pk)
    later = make_coupon_type(valid_from=clock.now() + dt.timedelta(days=1))
    assert _code(services.claim_coupon, user=ada, coupon_type_id=later.pk) == "COUPON_NOT_AVAILABLE"
    prize_only = make_coupon_type(claimable=False)
    assert _code(services.claim_coupon, user=ada, coupon_type_id=prize_only.pk) == "NOT_FOUND"
    assert Coupon.objects.filter(owner=ada).count() == 1


def test_cash_back_over_the_campaign_budget_or_marketing_account_is_refused(db):
    fund_marketing(700)
    ada = new_user()
    campaign = make_campaign(budget=800)
    kind = make_coupon_type(value=500, campaign=campaign, per_user_limit=5)
    first = services.claim_coupon(user=ada, coupon_type_id=kind.pk)
    second = services.claim_coupon(user=ada, coupon_type_id=kind.pk)
    services.redeem_coupon(user=ada, coupon_id=first.pk, reference="a:1")
    assert _code(services.redeem_coupon, user=ada, coupon_id=second.pk, reference="a:2") == "BUDGET_EXHAUSTED"
    Campaign.objects.filter(pk=campaign.pk).update(budget=10_000)
    # the campaign has room now, but the marketing account holds only 200
    assert _code(services.redeem_coupon, user=ada, coupon_id=second.pk, reference="a:2") == "BUDGET_EXHAUSTED"
    second.refresh_from_db()
    campaign.refresh_from_db()
    assert second.status == Coupon.Status.AVAILABLE and campaign.spent == 500 and marketing_balance() == 200
    assert_ledgers_ok()
