"""Share codes, clicks (deduplicated per device and day), first-touch attribution and the funnel per code,
per user and per campaign."""

from __future__ import annotations

import datetime as dt

import pytest

from backend.core import clock
from backend.core.errors import RateLimited
from backend.referrals import selectors, services
from backend.referrals.models import AbuseFlag, ShareClick

from .conftest import after_holding, in_branch, make_campaign, new_user, pledge, refer

pytestmark = pytest.mark.django_db


def test_one_code_per_campaign_and_channel_and_each_share_counts(campaign, referrer):
    first = services.create_share_code(user=referrer, campaign_id=campaign.pk, channel="chat")
    again = services.create_share_code(user=referrer, campaign_id=campaign.pk, channel="chat")
    other = services.create_share_code(user=referrer, campaign_id=campaign.pk, channel="moments")
    assert first.code == again.code != other.code
    assert again.share_count == 2
    with pytest.raises(services.ChannelInvalid):
        services.create_share_code(user=referrer, campaign_id=campaign.pk, channel="sms")
    ended = make_campaign(ends_at=clock.now() - dt.timedelta(hours=1))
    with pytest.raises(services.CampaignNotRunning):
        services.create_share_code(user=referrer, campaign_id=ended.pk, channel="chat")


def test_clicks_are_deduplicated_per_device_and_day(campaign, referrer):
    share = services.create_share_code(user=referrer, campaign_id=campaign.pk, channel="external")
    assert services.record_click(code=share.code, device_id="device-aaaa", client_ip="10.0.0.1") is True
    assert services.record_click(code=share.code.lower(), device_id="device-aaaa", client_ip="10.0.0.1") is False
    assert services.record_click(code=share.code, device_id="device-bbbb", client_ip="10.0.0.1") is True
    clock.advance(dt.timedelta(days=1))
    assert services.record_click(code=share.code, device_id="device-aaaa", client_ip="10.0.0.1") is True
    assert ShareClick.objects.count() == 3
    assert "device-aaaa" not in set(ShareClick.objects.values_list("device_hash", flat=True))
    with pytest.raises(services.DeviceIdInvalid):
        services.record_click(code=share.code, device_id="x", client_ip="10.0.0.1")
    with pytest.raises(services.ShareCodeInvalid):
        services.record_click(code="ZZZZZZZZ", device_id="device-cccc", client_ip="10.0.0.1")


def test_clicks_are_rate_limited_per_ip(campaign, referrer, settings):
    settings.QUANZI_REFERRALS = {"CLICKS_PER_IP_PER_MINUTE": 3}
    share = services.create_share_code(user=referrer, campaign_id=campaign.pk, channel="external")
    for n in range(3):
        services.record_click(code=share.code, device_id=f"device-{n:04d}", client_ip="10.0.0.9")
    with pytest.raises(RateLimited):
        services.record_click(code=share.code, device_id="device-9999", client_ip="10.0.0.9")
    services.record_click(code=share.code, device_id="device-9999", client_ip="10.0.0.10")


def test_funnel_per_code_user_and_campaign(campaign, referrer):
    chat = services.create_share_code(user=referrer, campaign_id=campaign.pk, channel="chat")
    services.create_share_code(user=referrer, campaign_id=campaign.pk, channel="chat")  # shared twice
    for n in range(4):
        services.record_click(code=chat.code, device_id=f"device-c{n:03d}", client_ip="10.0.0.1")
    a, b, c = new_user(), new_user(), new_user()
    for friend in (a, b, c):
        services.claim_referral(user=friend, code=chat.code)
    refer(referrer, campaign, channel="moments")  # 1 share, 1 click, 1 sign-up, never qualifies
    pledge(a)
    pledge(b)
    after_holding(campaign)
    by_code = selectors.funnels_by_code(selectors.share_codes_of(referrer))
    assert vars(by_code[chat.pk]) == {"shares": 2, "clicks": 4, "signups": 3, "qualified": 2, "rewarded": 2}
    mine = selectors.funnel_of(selectors.share_codes_of(referrer))
    assert vars(mine) == {"shares": 3, "clicks": 5, "signups": 4, "qualified": 2, "rewarded": 2}
    other = new_user()
    refer(other, campaign)
    assert vars(selectors.campaign_funnel(campaign)) == {"shares": 4, "clicks": 6, "signups": 5, "qualified": 2,
                                                          "rewarded": 2}


def test_signup_velocity_raises_one_flag_for_review(campaign, referrer, settings):
    settings.QUANZI_REFERRALS = {"VELOCITY_SIGNUPS_PER_HOUR": 3}
    share = services.create_share_code(user=referrer, campaign_id=campaign.pk, channel="external")
    for _ in range(6):
        services.claim_referral(user=new_user(), code=share.code)
    flag = AbuseFlag.objects.get(user=referrer)
    assert flag.kind == "signup_velocity" and "4 sign-ups" in flag.detail


def test_staff_leaderboard_ranks_client_managers_per_branch(campaign):
    alice = new_user("Alice", role="client_manager")
    bob = new_user("Bob", role="client_manager")
    carol = new_user("Carol", role="client_manager")
    customer = new_user("Cust")
    in_branch(alice, "Haidian")
    in_branch(bob, "Haidian")
    in_branch(carol, "Chaoyang")
    pledge(refer(bob, campaign))
    pledge(refer(bob, campaign))
    pledge(refer(alice, campaign))
    refer(alice, campaign)
    refer(carol, campaign)
    pledge(refer(customer, campaign))
    after_holding(campaign)
    board = selectors.staff_leaderboard(campaign)
    assert [(r.display_name, r.funnel.rewarded, r.funnel.signups) for r in board] == [
        ("Bob", 2, 2), ("Alice", 1, 2), ("Carol", 0, 1)]
    assert [r.display_name for r in selectors.staff_leaderboard(campaign, branch="Chaoyang")] == ["Carol"]
    # advisors owns the branch: moving Bob there in his ManagerProfile moves him on the leaderboard at once.
    from backend.advisors.models import ManagerProfile

    ManagerProfile.objects.filter(user=bob).update(branch="Chaoyang")
    assert [(r.display_name, r.branch) for r in selectors.staff_leaderboard(campaign, branch="Chaoyang")] == [
        ("Bob", "Chaoyang"), ("Carol", "Chaoyang")]
    assert [r.display_name for r in selectors.staff_leaderboard(campaign, branch="Haidian")] == ["Alice"]


def test_claims_are_rate_limited_so_codes_cannot_be_guessed(campaign, settings):
    settings.QUANZI_REFERRALS = {"CLAIMS_PER_USER_PER_MINUTE": 3}
    guesser = new_user()
    for guess in ("AAAAAAAA", "BBBBBBBB", "CCCCCCCC"):
        with pytest.raises(services.ShareCodeInvalid):
            services.claim_referral(user=guesser, code=guess)
    with pytest.raises(RateLimited):
        services.claim_referral(user=guesser, code="DDDDDDDD")
