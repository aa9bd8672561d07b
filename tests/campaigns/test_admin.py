"""Operations: a campaign is configured in the admin without code (template, odds table inline), its page shows
issued / claimed / redeemed and cost against budget as inline SVG, and every change is audited."""

from __future__ import annotations

import pytest

from backend.campaigns import selectors, services
from backend.campaigns.models import Campaign, Prize
from backend.core.models import AdminAuditEntry

from .conftest import add_prize, make_campaign, make_coupon_type, new_user

pytestmark = pytest.mark.django_db

FORM = {"name": "春节抽奖", "template": "transaction_lottery", "is_active": "on", "regions": "sh",
        "starts_at_0": "2026-01-01", "starts_at_1": "00:00:00", "ends_at_0": "2026-12-31", "ends_at_1": "00:00:00",
        "budget": 500000, "trigger_kind": "transfer", "trigger_min_amount": 10000, "draw_cost_points": 0,
        "daily_draws_per_user": 3, "no_prize_weight": 5,
        "prizes-TOTAL_FORMS": 1, "prizes-INITIAL_FORMS": 0, "prizes-MIN_NUM_FORMS": 0, "prizes-MAX_NUM_FORMS": 1000,
        "prizes-0-name": "88元现金", "prizes-0-kind": "cash", "prizes-0-points": 0, "prizes-0-cash_amount": 8800,
        "prizes-0-weight": 1, "prizes-0-stock": 10}


def test_staff_configure_a_lottery_with_its_odds_table_and_it_is_audited(ops):
    client, _ = ops
    assert client.post("/admin/campaigns/campaign/add/", FORM).status_code == 302
    campaign = Campaign.objects.get(name="春节抽奖")
    assert [(p.kind, p.cash_amount, p.stock) for p in campaign.prizes.all()] == [("cash", 8800, 10)]
    assert len(campaign.seed_hash) == 64
    assert AdminAuditEntry.objects.filter(object_id=str(campaign.pk)).exists()


def test_template_fields_are_required_and_the_budget_not_cut_below_spending(ops):
    client, _ = ops
    page = client.post("/admin/campaigns/campaign/add/", {**FORM, "trigger_kind": ""})
    assert page.status_code == 200 and "qualifying transaction kind" in page.content.decode()
    share = client.post("/admin/campaigns/campaign/add/", {**FORM, "template": "share_reward"})
    assert "choose it" in share.content.decode()
    assert not Campaign.objects.filter(name="春节抽奖").exists()
    client.post("/admin/campaigns/campaign/add/", FORM)
    campaign = Campaign.objects.get(name="春节抽奖")
    Campaign.objects.filter(pk=campaign.pk).update(spent=5_000)
    change = {**FORM, "budget": 4_000, "prizes-TOTAL_FORMS": 0}
    page = client.post(f"/admin/campaigns/campaign/{campaign.pk}/change/", change)
    assert page.status_code == 200 and "already paid out" in page.content.decode()
    assert Campaign.objects.get(pk=campaign.pk).budget == 500_000


def test_campaign_page_charts_coupons_and_cost_inline(ops, budget):
    client, _ = ops
    campaign = make_campaign(no_prize_weight=0, draw_cost_points=0, budget=100_000)
    kind = make_coupon_type(name="<b>返现</b>", campaign=campaign, value=1_000, per_user_limit=3)
    ada = new_user()
    coupon = services.claim_coupon(user=ada, coupon_type_id=kind.pk)
    services.claim_coupon(user=ada, coupon_type_id=kind.pk)
    services.redeem_coupon(user=ada, coupon_id=coupon.pk, reference="t:1")
    add_prize(campaign, kind=Prize.Kind.CASH, cash_amount=2_000, weight=1, stock=1)
    services.draw(user=ada, campaign_id=campaign.pk)
    html = client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    assert 'aria-label="Campaign results"' in html and "<script" not in html.split('aria-label="Campaign results"')[1][:3000]
    assert ">2</text>" in html  # claimed
    assert ">1</text>" in html  # redeemed / draws / wins
    assert "Cost ¥30.00 of budget ¥1,000.00 (¥970.00 left)" in html
    assert "&lt;b&gt;返现&lt;/b&gt;" in client.get("/admin/campaigns/coupontype/").content.decode()
    assert "hidden until the end" in html
    # a coupon operations issue counts as issued, not claimed
    client_staff = ops[1]
    services.issue_coupon(staff=client_staff, user_id=new_user().pk, coupon_type_id=kind.pk, reason="补偿",
                          idempotency_key="chart-grant-1")
    stats = selectors.campaign_stats(campaign)
    assert (stats.issued, stats.claimed, stats.redeemed) == (3, 2, 1)
    html = client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    assert ">3</text>" in html and "Cost ¥30.00 of budget ¥1,000.00" in html


def test_saving_a_campaign_in_the_admin_keeps_what_draws_paid_meanwhile(ops):
    client, _ = ops
    client.post("/admin/campaigns/campaign/add/", FORM)
    campaign = Campaign.objects.get(name="春节抽奖")
    prize = campaign.prizes.get()
    page = client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/")  # staff open the form …
    assert page.status_code == 200
    Campaign.objects.filter(pk=campaign.pk).update(spent=8_800)  # … a draw pays out …
    Prize.objects.filter(pk=prize.pk).update(awarded=1)
    change = {**FORM, "name": "春节抽奖2", "prizes-INITIAL_FORMS": 1, "prizes-0-id": prize.pk, "prizes-0-campaign": campaign.pk}
    assert client.post(f"/admin/campaigns/campaign/{campaign.pk}/change/", change).status_code == 302
    campaign.refresh_from_db()
    prize.refresh_from_db()
    assert (campaign.name, campaign.spent, prize.awarded) == ("春节抽奖2", 8_800, 1)
