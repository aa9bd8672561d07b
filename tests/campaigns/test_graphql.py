"""GraphQL: my points and statement, my coupons, claim/redeem, draw, campaign info with the seed hash and
(after the end) the seed, verifyDraw; strangers' ids answer like missing ones."""

from __future__ import annotations

import datetime as dt

import pytest

from backend.accounts.ids import user_gid
from backend.accounts.models import User
from backend.campaigns.models import Campaign, Prize
from backend.core import clock
from backend.core.ids import encode_id
from tests.core.test_mutation_payloads import NOT_WALKABLE, Runner, lit

from .conftest import activity, add_prize, give_points, make_campaign, make_coupon_type, wallet_balance

pytestmark = pytest.mark.django_db

POINTS = """{ myPoints { balance statement(first: 2) { edges { cursor node { kind points memo } }
  pageInfo { hasNextPage endCursor } } } }"""
CLAIM = """mutation($t: ID!) { claimCoupon(couponTypeId: $t) { coupon { id status couponType { name kind value } }
  errors { code field } } }"""
REDEEM = """mutation($c: ID!, $r: String!) { redeemCoupon(couponId: $c, reference: $r) { replayed coupon { status }
  errors { code field } } }"""
DRAW = """mutation($c: ID!) { drawLottery(campaignId: $c) { draw { id number roll outcome pointsSpent
  odds { prizeNumber weight } prize { name } } errors { code field } } }"""
CAMPAIGNS = "{ marketingCampaigns { id number name template seedHash seed prizes { number weight remainingStock } } }"
VERIFY = "query($d: ID!, $s: String!) { verifyDraw(drawId: $d, seed: $s) { seedMatchesHash roll slotPrizeNumber matches } }"


def test_points_statement_pages_newest_first(gql, sign_in, transfer_rule):
    gql.token = sign_in("+8613900000301")["tokens"]["accessToken"]
    ada = User.objects.order_by("-id").first()
    for n in range(3):
        activity(ada, amount=1_000, reference=f"gql:t:{n}")
    data = gql(POINTS)["data"]["myPoints"]
    assert data["balance"] == 3 * (5 + 10)
    assert [e["node"]["points"] for e in data["statement"]["edges"]] == [15, 15]
    assert data["statement"]["pageInfo"]["hasNextPage"] is True
    rest = gql(POINTS.replace("first: 2", f"first: 2, after: {lit(data['statement']['pageInfo']['endCursor'])}"))
    assert len(rest["data"]["myPoints"]["statement"]["edges"]) == 1


def test_claim_redeem_and_a_strangers_coupon_is_not_found(gql, sign_in, budget):
    kind = make_coupon_type(value=300)
    ada = sign_in("+8613900000311")["tokens"]["accessToken"]
    claimed = gql(CLAIM, {"t": encode_id("CouponType", kind.pk)}, token=ada)["data"]["claimCoupon"]
    assert claimed["errors"] == [] and claimed["coupon"]["couponType"]["kind"] == "CASH_BACK"
    coupon_id = claimed["coupon"]["id"]
    eve = sign_in("+8613900000312")["tokens"]["accessToken"]
    stolen = gql(REDEEM, {"c": coupon_id, "r": "transfer:1"}, token=eve)["data"]["redeemCoupon"]
    missing = gql(REDEEM, {"c": encode_id("Coupon", 10**9), "r": "transfer:1"}, token=eve)["data"]["redeemCoupon"]
    assert stolen == missing == {"replayed": None, "coupon": None, "errors": [{"code": "NOT_FOUND", "field": "couponId"}]}
    ok = gql(REDEEM, {"c": coupon_id, "r": "transfer:1"}, token=ada)["data"]["redeemCoupon"]
    assert ok == {"replayed": False, "coupon": {"status": "REDEEMED"}, "errors": []}
    again = gql(REDEEM, {"c": coupon_id, "r": "transfer:2"}, token=ada)["data"]["redeemCoupon"]
    assert again["errors"] == [{"code": "COUPON_ALREADY_REDEEMED", "field": "couponId"}]
    assert wallet_balance(User.objects.get(pk=kind.coupons.get().owner_id)) == 300
    mine = gql("{ myCoupons { status } }", token=eve)["data"]["myCoupons"]
    assert mine == []


def test_draw_then_verify_with_the_revealed_seed(gql, sign_in, budget):
    campaign = make_campaign(no_prize_weight=3)
    add_prize(campaign, kind=Prize.Kind.POINTS, points=7, weight=2, stock=50)
    gql.token = sign_in("+8613900000321")["tokens"]["accessToken"]
    ada = User.objects.order_by("-id").first()
    cid = encode_id("MarketingCampaign", campaign.pk)
    broke = gql(DRAW, {"c": cid})["data"]["drawLottery"]
    assert broke["errors"] == [{"code": "INSUFFICIENT_POINTS", "field": "campaignId"}] and broke["draw"] is None
    give_points(ada, 50)
    draws = [gql(DRAW, {"c": cid})["data"]["drawLottery"]["draw"] for _ in range(3)]
    assert all(d["pointsSpent"] == 10 for d in draws)
    response = gql(CAMPAIGNS)
    assert "data" in response, response
    info = response["data"]["marketingCampaigns"]
    assert info[0]["seedHash"] == campaign.seed_hash and info[0]["seed"] is None
    clock.advance(dt.timedelta(days=8))
    gql.token = sign_in("+8613900000321")["tokens"]["accessToken"]  # the access token expired meanwhile
    seed = gql(CAMPAIGNS)["data"]["marketingCampaigns"][0]["seed"]
    assert seed == campaign.seed
    for d in draws:
        check = gql(VERIFY, {"d": d["id"], "s": seed})["data"]["verifyDraw"]
        assert check["matches"] and check["roll"] == d["roll"]
    wrong = gql(VERIFY, {"d": draws[0]["id"], "s": "a" * 64})["data"]["verifyDraw"]
    assert wrong["seedMatchesHash"] is False and wrong["matches"] is False
    eve = sign_in("+8613900000322")["tokens"]["accessToken"]
    assert gql(VERIFY, {"d": draws[0]["id"], "s": seed}, token=eve)["data"] is None


def test_a_campaign_outside_my_branch_gives_a_clear_code(gql, sign_in, db):
    campaign = make_campaign(Campaign.Template.TRANSACTION_LOTTERY, regions="gz", trigger_kind="transfer",
                             no_prize_weight=1)
    gql.token = sign_in("+8613900000331")["tokens"]["accessToken"]
    result = gql(DRAW, {"c": encode_id("MarketingCampaign", campaign.pk)})["data"]["drawLottery"]
    assert result["errors"] == [{"code": "NOT_ELIGIBLE", "field": "campaignId"}]
    assert gql(CAMPAIGNS)["data"]["marketingCampaigns"] == []


def test_every_campaigns_payload_renders(gql, sign_in, budget):
    """Every field of the campaigns mutations' payloads (the walk of tests/core/test_mutation_payloads.py)."""
    run = Runner(gql)
    run.token = sign_in("+8613900000341")["tokens"]["accessToken"]
    ada = User.objects.order_by("-id").first()
    kind = make_coupon_type(value=200, per_user_limit=2)
    claimed = run("claimCoupon", f"couponTypeId: {lit(encode_id('CouponType', kind.pk))}")
    assert claimed["coupon"]["couponType"]["remainingStock"] == 99
    redeemed = run("redeemCoupon", f"couponId: {lit(claimed['coupon']['id'])}, reference: \"t:1\"")
    assert redeemed["coupon"]["status"] == "REDEEMED"
    campaign = make_campaign(Campaign.Template.TRANSACTION_LOTTERY, trigger_kind="transfer", no_prize_weight=0)
    add_prize(campaign, kind=Prize.Kind.COUPON, coupon_type=make_coupon_type(claimable=False), weight=1, stock=1)
    activity(ada, amount=100)
    drawn = run("drawLottery", f"campaignId: {lit(encode_id('MarketingCampaign', campaign.pk))}")
    assert drawn["draw"]["outcome"] == "WON" and drawn["draw"]["coupon"]["status"] == "AVAILABLE"
    assert drawn["draw"]["campaign"]["myDrawChances"] == 0
    staff = sign_in("+8613900000342")["tokens"]["accessToken"]
    User.objects.filter(pk=User.objects.order_by("-id").first().pk).update(is_staff=True)
    issued = run("issueCoupon", f"couponTypeId: {lit(encode_id('CouponType', kind.pk))}, "
                                f"userId: {lit(user_gid(ada))}, reason: \"补偿\", idempotencyKey: \"walk-grant-1\"",
                 token=staff)
    assert issued["coupon"]["couponType"]["remainingStock"] == 98 and issued["replayed"] is False
    assert sorted(dict.fromkeys(run.seen)) == sorted(
        name for name, why in NOT_WALKABLE.items() if "tests/campaigns" in why)


def test_a_share_reward_campaign_names_its_referrals_campaign_and_has_no_draws(gql, sign_in, db):
    from tests.referrals.conftest import make_campaign as make_referral_campaign

    referral = make_referral_campaign()
    share = make_campaign(Campaign.Template.SHARE_REWARD, referral_campaign=referral)
    gql.token = sign_in("+8613900000351")["tokens"]["accessToken"]
    data = gql("{ marketingCampaigns { template referralCampaign { id name } } }")["data"]["marketingCampaigns"]
    assert data == [{"template": "SHARE_REWARD",
                     "referralCampaign": {"id": encode_id("ReferralCampaign", referral.pk), "name": "任性理财"}}]
    result = gql(DRAW, {"c": encode_id("MarketingCampaign", share.pk)})["data"]["drawLottery"]
    assert result["errors"] == [{"code": "CAMPAIGN_NOT_DRAWABLE", "field": "campaignId"}]
