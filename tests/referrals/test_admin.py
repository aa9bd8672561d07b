"""Operations' admin: campaigns with their funnel, budget burn and per-branch staff leaderboard rendered as
inline SVG/HTML (no scripts), flags reviewed, rewards clawed back through the services."""

from __future__ import annotations

import re

import pytest

from backend.accounts.models import User
from backend.referrals.models import AbuseFlag, Campaign, Reward

from .conftest import after_holding, in_branch, new_user, pledge, refer

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops_client(client):
    staff = User.objects.create_superuser("+8613700008888", "ops-password-2026")
    client.force_login(staff)
    return client


def test_campaign_page_draws_funnel_budget_and_leaderboard_inline(ops_client, campaign):
    manager = new_user("<b>Wang</b>", role="client_manager")
    in_branch(manager, "Haidian")
    pledge(refer(manager, campaign))
    refer(manager, campaign)
    after_holding(campaign)
    page = ops_client.get(f"/admin/referrals/campaign/{campaign.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'aria-label="Referral funnel"' in html and 'aria-label="Budget burn"' in html
    assert re.search(r">2 \(100\.0%\)</text>", html)  # sign-ups after 2 clicks
    assert "Haidian" in html and "&lt;b&gt;Wang&lt;/b&gt;" in html and "<b>Wang</b>" not in html
    spent = Campaign.objects.get(pk=campaign.pk).spent
    assert f"¥{spent // 100:,}.{spent % 100:02d} of ¥100,000.00 used" in html
    assert "<script src" not in html.split('id="content"')[1]


def test_campaign_can_be_created_and_its_budget_not_cut_below_spending(ops_client, campaign):
    form = {"name": "Spring", "scope": "lending", "is_active": "on", "starts_at_0": "2026-01-01",
            "starts_at_1": "00:00:00", "boost_bp": 30, "cap_bp": 300, "boost_days": 365, "welcome_min": 5000,
            "welcome_max": 50000, "qualifying_kind": "lending_pledge_disbursed", "qualifying_min_amount": 100,
            "holding_days": 7, "budget": 1000000, "daily_rewards_per_referrer": 10}
    assert ops_client.post("/admin/referrals/campaign/add/", form).status_code == 302
    spring = Campaign.objects.get(name="Spring")
    spring.spent = 50_000
    spring.save()
    page = ops_client.post(f"/admin/referrals/campaign/{spring.pk}/change/", {**form, "budget": 10_000})
    assert page.status_code == 200 and "already paid out" in page.content.decode()
    assert Campaign.objects.get(pk=spring.pk).budget == 1_000_000


def test_flags_are_reviewed_and_rewards_clawed_back_from_the_admin(ops_client, campaign, referrer):
    flag = AbuseFlag.objects.create(user=referrer, kind="signup_velocity", detail="30 sign-ups within an hour")
    ops_client.post("/admin/referrals/abuseflag/", {"action": "mark_reviewed", "_selected_action": [flag.pk]})
    flag.refresh_from_db()
    assert flag.reviewed_at is not None and flag.resolution == "reviewed in admin"
    pledge(refer(referrer, campaign))
    after_holding(campaign)
    reward = Reward.objects.get()
    ops_client.post("/admin/referrals/reward/", {"action": "claw_back", "_selected_action": [reward.pk]})
    reward.refresh_from_db()
    assert reward.status == Reward.Status.CLAWED_BACK and reward.owed_amount == 0
    listing = ops_client.get("/admin/referrals/reward/?status__exact=clawed_back")
    assert listing.status_code == 200 and "ACTION_REVERSED" in listing.content.decode()
    assert ops_client.get(f"/admin/referrals/reward/{reward.pk}/delete/").status_code == 403
