"""Undone actions take back what they earned (through core.activity_hooks, so wallet and referrals never import
campaigns): a reversed journal entry (wallet.services.reverse_entry) or a clawed-back referral reward reverses
the activity's points and voids its unused draw chances. Points already spent come back from the rest of the
balance, and what the balance cannot cover is owed and taken from the next points earned: a points balance
never goes negative and always equals the sum of its entries."""

from __future__ import annotations

import datetime as dt

import pytest

from backend.campaigns import selectors, services
from backend.campaigns.models import Activity, Campaign, DrawChance, PointsEntry, PointsRule
from backend.core import clock
from backend.referrals import services as referrals
from backend.referrals.models import Reward
from backend.wallet import services as wallet
from backend.wallet.models import LedgerAccount
from tests.conftest import befriend
from tests.referrals.conftest import after_holding, pledge, refer
from tests.referrals.conftest import make_campaign as make_referral_campaign

from .conftest import assert_ledgers_ok, error_code, give_points, make_campaign, new_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def payer(db, transfer_rule):
    ada, bob = new_user("ada"), new_user("bob")
    ada.kyc_level = bob.kyc_level = 2
    ada.save()
    bob.save()
    bank = wallet.system_account(LedgerAccount.Kind.EXTERNAL_BANK)
    wallet.transfer(source_id=bank.pk, destination_id=wallet.ensure_wallet(user_id=ada.pk).pk, amount=500_000,
                    kind="top_up", idempotency_key=f"test:fund:{ada.pk}")
    befriend(ada, bob)
    return ada, bob


def _send(ada, bob, amount: int, key: str, capture) -> int:
    with capture(execute=True):
        return wallet.send_money(sender=ada, recipient_id=bob.pk, amount=amount, idempotency_key=key).entry.pk


def _reverse(entry_id: int, capture) -> None:
    with capture(execute=True):
        wallet.reverse_entry(entry_id=entry_id, idempotency_key=f"ops:reverse:{entry_id}")


def _statement(user) -> list[tuple[str, int]]:
    return [(leg.entry.kind, leg.amount) for leg in selectors.statement_of(user)]


def test_a_reversed_payment_takes_back_its_points_and_unused_draws(payer, django_capture_on_commit_callbacks):
    ada, bob = payer
    lottery = make_campaign(Campaign.Template.TRANSACTION_LOTTERY, trigger_kind="transfer", no_prize_weight=1)
    entry_id = _send(ada, bob, 10_000, "send-rev-0001", django_capture_on_commit_callbacks)
    assert selectors.points_balance(ada) == 105 and DrawChance.objects.filter(used_at__isnull=True).count() == 1
    _reverse(entry_id, django_capture_on_commit_callbacks)
    assert selectors.points_balance(ada) == 0
    assert _statement(ada) == [("reverse", -105), ("earn", 105)]
    assert Activity.objects.get().reversed_at is not None
    # the chance is gone: drawing now needs a new transaction
    assert error_code(services.draw, user=ada, campaign_id=lottery.pk) == "NO_DRAW_CHANCE"
    # an entry nobody reported (a top-up) reverses without touching points
    top_up = wallet.transfer(source_id=wallet.system_account(LedgerAccount.Kind.EXTERNAL_BANK).pk,
                             destination_id=wallet.ensure_wallet(user_id=bob.pk).pk, amount=100, kind="top_up",
                             idempotency_key="test:topup:bob").entry
    _reverse(top_up.pk, django_capture_on_commit_callbacks)
    assert PointsEntry.objects.filter(kind="reverse").count() == 1
    assert_ledgers_ok()


def test_spent_points_come_back_from_the_rest_of_the_balance(payer, django_capture_on_commit_callbacks):
    ada, bob = payer
    give_points(ada, 100, valid_days=365)  # expires after the transfer's points (30 days)
    entry_id = _send(ada, bob, 10_000, "send-rev-0002", django_capture_on_commit_callbacks)  # +105
    services.spend_points(user_id=ada.pk, points=80, reference="spend:r2", memo="兑换")  # from the 105 lot first
    _reverse(entry_id, django_capture_on_commit_callbacks)
    assert selectors.points_balance(ada) == 100 - 80  # the transfer's 105 are all taken back
    assert _statement(ada)[0] == ("reverse", -105)
    assert Activity.objects.get().points_owed == 0
    assert_ledgers_ok()


def test_what_the_balance_cannot_cover_is_owed_and_taken_from_the_next_points(
        payer, django_capture_on_commit_callbacks):
    ada, bob = payer
    entry_id = _send(ada, bob, 10_000, "send-rev-0003", django_capture_on_commit_callbacks)  # +105
    services.spend_points(user_id=ada.pk, points=100, reference="spend:r3", memo="抽奖")
    _reverse(entry_id, django_capture_on_commit_callbacks)
    _reverse(entry_id, django_capture_on_commit_callbacks)  # a retried reversal is the same reversal
    assert selectors.points_balance(ada) == 0  # never negative
    assert Activity.objects.get().points_owed == 100
    give_points(ada, 30)
    assert selectors.points_balance(ada) == 0 and Activity.objects.get().points_owed == 70
    give_points(ada, 100)
    assert selectors.points_balance(ada) == 30 and Activity.objects.get().points_owed == 0
    assert _statement(ada) == [("reverse", -70), ("earn", 100), ("reverse", -30), ("earn", 30), ("reverse", -5),
                               ("spend", -100), ("earn", 105)]
    services.spend_points(user_id=ada.pk, points=30, reference="spend:r3b", memo="")  # the lots agree
    assert selectors.points_balance(ada) == 0
    assert_ledgers_ok()


def test_points_that_expired_before_the_reversal_are_not_owed(payer, django_capture_on_commit_callbacks):
    ada, bob = payer
    entry_id = _send(ada, bob, 10_000, "send-rev-0004", django_capture_on_commit_callbacks)  # +105, 30 days
    services.spend_points(user_id=ada.pk, points=5, reference="spend:r4", memo="")
    clock.advance(dt.timedelta(days=31))
    services.expire_points()
    give_points(ada, 50)
    _reverse(entry_id, django_capture_on_commit_callbacks)
    assert selectors.points_balance(ada) == 45 and Activity.objects.get().points_owed == 0  # only the 5 spent
    assert_ledgers_ok()


def test_a_clawed_back_referral_reward_takes_back_its_points(db, django_capture_on_commit_callbacks):
    from tests.referrals.conftest import fund_marketing

    fund_marketing(100_000_000)
    PointsRule.objects.create(activity_kind="referral_rewarded", fixed_points=500, valid_days=365)
    referrer, campaign = new_user("ada"), make_referral_campaign()
    friend = refer(referrer, campaign)
    pledge(friend, reference="pledge:pts")
    with django_capture_on_commit_callbacks(execute=True):
        after_holding(campaign)
    assert Reward.objects.get().status == Reward.Status.GRANTED
    assert selectors.points_balance(referrer) == 500
    with django_capture_on_commit_callbacks(execute=True):
        referrals.reverse_qualifying_event(reference="pledge:pts")
    assert Reward.objects.get().status == Reward.Status.CLAWED_BACK
    assert selectors.points_balance(referrer) == 0
    assert Activity.objects.get(kind="referral_rewarded").reversed_at is not None
    assert_ledgers_ok()
