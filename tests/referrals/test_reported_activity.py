"""A granted referral reward is reported to campaigns (core.activity_hooks): the referrer earns points by an
active `referral_rewarded` rule, once."""

from __future__ import annotations

import pytest

from backend.campaigns import services as campaigns
from backend.campaigns.models import Activity, PointsRule
from backend.referrals.models import Reward

from .conftest import after_holding, pledge, refer

pytestmark = pytest.mark.django_db


def test_a_granted_reward_earns_the_referrer_points_once(campaign, referrer, django_capture_on_commit_callbacks):
    PointsRule.objects.create(activity_kind="referral_rewarded", min_amount=0, fixed_points=100,
                              points_per_yuan=0, valid_days=90)
    friend = refer(referrer, campaign)
    pledge(friend, 100_000)
    with django_capture_on_commit_callbacks(execute=True):
        assert after_holding(campaign) == 1
    reward = Reward.objects.get()
    assert reward.status == Reward.Status.GRANTED
    assert campaigns.points_account(referrer.pk).balance == 100
    assert campaigns.points_account(friend.pk).balance == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert after_holding(campaign) == 0  # the scan again: nothing new
    assert campaigns.points_account(referrer.pk).balance == 100
    assert Activity.objects.get().reference == f"referrals:reward:{reward.pk}"
