"""Self-referral by one person with two phone numbers: both accounts verified (KYC) with the same ID number have
equal ID-number blind indexes, so the referral is rejected with SELF_REFERRAL_SAME_ID_NUMBER."""

from __future__ import annotations

from backend.accounts import services as accounts
from backend.referrals import selectors
from backend.referrals.models import AbuseFlag, Reward
from tests.accounts.test_identity import all_database_text, id_number

from .conftest import after_holding, assert_ledger_ok, balance_of, new_user, pledge, refer


def test_two_accounts_verified_with_one_id_number_cannot_refer_each_other(campaign, referrer):
    number = id_number("11010519491231002")
    accounts.record_identity_verification(user=referrer, id_number=number)
    second_phone = new_user("Ada's second phone")
    friend = refer(referrer, campaign, referee=second_phone)
    accounts.record_identity_verification(user=friend, id_number=number.lower())
    pledge(friend)
    after_holding(campaign)
    reward = Reward.objects.get()
    assert (reward.status, reward.reason_code) == (Reward.Status.REJECTED, "SELF_REFERRAL_SAME_ID_NUMBER")
    assert balance_of(friend) == 0 and selectors.active_boost_bp(referrer, "lending") == 0
    assert AbuseFlag.objects.filter(user=referrer, kind="self_referral",
                                    detail__contains="SELF_REFERRAL_SAME_ID_NUMBER").exists()
    assert number not in all_database_text()
    assert_ledger_ok()


def test_different_id_numbers_are_two_people(campaign, referrer):
    accounts.record_identity_verification(user=referrer, id_number=id_number("11010519491231002"))
    friend = refer(referrer, campaign)
    accounts.record_identity_verification(user=friend, id_number=id_number("44030419900101123"))
    pledge(friend)
    after_holding(campaign)
    reward = Reward.objects.get()
    assert (reward.status, reward.reason_code) == (Reward.Status.GRANTED, "")
    assert selectors.active_boost_bp(referrer, "lending") == campaign.boost_bp


def test_unverified_accounts_are_not_matched_on_a_missing_id_number(campaign, referrer):
    friend = refer(referrer, campaign)  # neither has an ID number on file: two empty indexes are no match
    pledge(friend)
    after_holding(campaign)
    assert Reward.objects.get().status == Reward.Status.GRANTED
