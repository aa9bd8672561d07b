"""The referral API as a phone uses it: share, an anonymous click, sign-up then claim, and what each side sees."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backend.accounts.models import User
from backend.core import clock
from backend.core.ids import encode_id
from backend.referrals.models import DoublingCard, ShareClick
from tests.core.test_mutation_payloads import NOT_WALKABLE, Runner, lit

from .conftest import after_holding, in_branch, make_campaign, new_user, pledge, refer

pytestmark = pytest.mark.django_db

SHARE = """mutation($c: ID!, $ch: ShareChannel!) { createShareCode(campaignId: $c, channel: $ch) {
  shareCode { id code channel campaign { name boostBp } } errors { code field } } }"""
CLICK = """mutation($code: String!, $d: String!) { recordShareClick(code: $code, deviceId: $d) {
  counted errors { code field } } }"""
CLAIM = """mutation($code: String!, $d: String) { claimReferral(code: $code, deviceId: $d) {
  campaign { name } errors { code field } } }"""
MINE = """query { myShareCodes { code funnel { shares clicks signups qualified rewarded } }
  myReferralFunnel { shares clicks signups qualified rewarded }
  myRateBoosts { activeBp capBp headroomBp boosts { bp scope } } }"""
WELCOME = """query { myWelcomeBonus { status amount redPacketId opened refundedAmount reasonCode owedAmount
  campaign { name } } }"""
GRAB = """mutation($id: ID!) { grabRedPacket(redPacketId: $id) { amount redPacket { status } errors { code } } }"""
BOARD = """query($b: String) { staffLeaderboard(branch: $b) { rank displayName funnel { signups rewarded } } }"""
CHOOSE = """mutation($id: ID!, $day: Date!) { chooseDoublingDay(cardId: $id, day: $day) {
  card { id status day } errors { code field } } }"""


def campaign_id(campaign) -> str:
    return encode_id("ReferralCampaign", campaign.pk)


def test_share_click_claim_and_funnel_over_graphql(gql, sign_in, campaign):
    ada = sign_in("+8613900000101")
    gql.token = ada["tokens"]["accessToken"]
    shared = gql(SHARE, {"c": campaign_id(campaign), "ch": "CHAT"})["data"]["createShareCode"]
    assert shared["errors"] == [] and shared["shareCode"]["campaign"]["boostBp"] == 30
    code = shared["shareCode"]["code"]

    gql.token = None  # the friend is not signed up yet
    assert gql(CLICK, {"code": code, "d": "browser-123456"})["data"]["recordShareClick"] == {
        "counted": True, "errors": []}
    assert gql(CLICK, {"code": code, "d": "browser-123456"})["data"]["recordShareClick"]["counted"] is False

    bob = sign_in("+8613900000102")
    gql.token = bob["tokens"]["accessToken"]
    claimed = gql(CLAIM, {"code": code, "d": "browser-123456"})["data"]["claimReferral"]
    assert claimed == {"campaign": {"name": "任性理财"}, "errors": []}
    assert gql(CLAIM, {"code": code})["data"]["claimReferral"]["errors"][0]["code"] == "ALREADY_ATTRIBUTED"
    assert gql(WELCOME)["data"]["myWelcomeBonus"]["status"] == "WAITING"

    pledge(User.objects.order_by("-id").first())  # Bob, the newest user
    after_holding(campaign)
    gql.token = sign_in("+8613900000102")["tokens"]["accessToken"]  # a week later: a fresh session
    bonus = gql(WELCOME)["data"]["myWelcomeBonus"]
    assert bonus["status"] == "PAID" and 5_000 <= bonus["amount"] <= 50_000 and bonus["opened"] is False
    # Bob opens it like any red packet.
    grabbed = gql(GRAB, {"id": bonus["redPacketId"]})["data"]["grabRedPacket"]
    assert grabbed["errors"] == [] and grabbed["amount"] == bonus["amount"]
    assert grabbed["redPacket"]["status"] == "EMPTY"
    assert gql(WELCOME)["data"]["myWelcomeBonus"]["opened"] is True
    assert gql(GRAB, {"id": bonus["redPacketId"]})["data"]["grabRedPacket"]["errors"][0]["code"] == \
        "ALREADY_GRABBED"

    gql.token = sign_in("+8613900000101")["tokens"]["accessToken"]
    mine = gql(MINE)["data"]
    funnel = {"shares": 1, "clicks": 1, "signups": 1, "qualified": 1, "rewarded": 1}
    assert mine["myShareCodes"] == [{"code": code, "funnel": funnel}]
    assert mine["myReferralFunnel"] == funnel
    assert mine["myRateBoosts"] == {"activeBp": 30, "capBp": 300, "headroomBp": 270,
                                    "boosts": [{"bp": 30, "scope": "lending"}]}
    assert gql(WELCOME)["data"]["myWelcomeBonus"] is None  # Ada was not referred


def test_own_code_and_bad_input_come_back_as_coded_errors(gql, sign_in, campaign):
    ada = sign_in("+8613900000111")
    gql.token = ada["tokens"]["accessToken"]
    code = gql(SHARE, {"c": campaign_id(campaign), "ch": "MOMENTS"})["data"]["createShareCode"]["shareCode"]["code"]
    assert gql(CLAIM, {"code": code})["data"]["claimReferral"]["errors"] == [
        {"code": "SELF_REFERRAL", "field": "code"}]
    assert gql(CLICK, {"code": code, "d": "x"})["data"]["recordShareClick"]["errors"] == [
        {"code": "DEVICE_ID_INVALID", "field": "deviceId"}]
    ended = make_campaign(ends_at=clock.now() - dt.timedelta(days=1))
    assert gql(SHARE, {"c": campaign_id(ended), "ch": "CHAT"})["data"]["createShareCode"]["errors"] == [
        {"code": "NOT_FOUND", "field": "campaignId"}]
    assert ShareClick.objects.count() == 0


def test_list_queries_do_not_grow_with_the_number_of_codes(gql, sign_in, budget):
    ada = sign_in("+8613900000121")
    gql.token = ada["tokens"]["accessToken"]
    for _ in range(2):
        campaign = make_campaign()
        for channel in ("CHAT", "MOMENTS", "EXTERNAL"):
            gql(SHARE, {"c": campaign_id(campaign), "ch": channel})
    with CaptureQueriesContext(connection) as few:
        assert len(gql(MINE)["data"]["myShareCodes"]) == 6
    campaign = make_campaign()
    for channel in ("CHAT", "MOMENTS", "EXTERNAL"):
        gql(SHARE, {"c": campaign_id(campaign), "ch": channel})
    with CaptureQueriesContext(connection) as more:
        assert len(gql(MINE)["data"]["myShareCodes"]) == 9
    assert len(more) == len(few)


def test_staff_leaderboard_is_for_client_managers_only(gql, sign_in, campaign):
    sign_in("+8613900000131")
    user = User.objects.order_by("-id").first()
    user.role, user.display_name = "client_manager", "Manager Wang"
    user.save()
    in_branch(user, "Haidian")
    pledge(refer(user, campaign))
    after_holding(campaign)
    gql.token = sign_in("+8613900000131")["tokens"]["accessToken"]
    assert gql(BOARD, {"b": "Haidian"})["data"]["staffLeaderboard"] == [
        {"rank": 1, "displayName": "Manager Wang", "funnel": {"signups": 1, "rewarded": 1}}]
    customer = sign_in("+8613900000132")
    gql.token = customer["tokens"]["accessToken"]
    result = gql(BOARD, {"b": None})
    assert result["errors"][0]["extensions"]["code"] == "FORBIDDEN"


def test_a_strangers_card_is_answered_like_a_missing_one(gql, sign_in, budget):
    campaign = make_campaign(awards_doubling_card=True)
    owner = new_user()
    pledge(refer(owner, campaign))
    after_holding(campaign)
    card = DoublingCard.objects.get()
    gql.token = sign_in("+8613900000141")["tokens"]["accessToken"]
    tomorrow = (clock.now().date() + dt.timedelta(days=1)).isoformat()
    for card_id in (encode_id("DoublingCard", card.pk), encode_id("DoublingCard", card.pk + 999), "garbage"):
        assert gql(CHOOSE, {"id": card_id, "day": tomorrow})["data"]["chooseDoublingDay"]["errors"] == [
            {"code": "NOT_FOUND", "field": "cardId"}]
    node = gql("query($id: ID!) { node(id: $id) { id } }", {"id": encode_id("DoublingCard", card.pk)})
    assert node["data"]["node"] is None
    card.refresh_from_db()
    assert card.day is None


def test_every_referrals_payload_renders(gql, sign_in, budget):
    """Every field of the referrals mutations' payloads, asked right after each mutation (the walk of
    tests/core/test_mutation_payloads.py, with the campaign and referral these need)."""
    run = Runner(gql)
    campaign = make_campaign(awards_doubling_card=True)
    run.token = sign_in("+8613900000151")["tokens"]["accessToken"]
    share = run("createShareCode", f"campaignId: {lit(campaign_id(campaign))}, channel: EXTERNAL")
    assert share["shareCode"]["funnel"]["shares"] == 1 and share["shareCode"]["campaign"]["holdingDays"] == 7
    code = share["shareCode"]["code"]
    assert run("recordShareClick", f'code: {lit(code)}, deviceId: "device-payload-1"', token="")["counted"] is True
    run.token = sign_in("+8613900000152")["tokens"]["accessToken"]
    assert run("claimReferral", f"code: {lit(code)}")["campaign"]["name"] == "任性理财"
    pledge(User.objects.order_by("-id").first())
    after_holding(campaign)
    run.token = sign_in("+8613900000151")["tokens"]["accessToken"]
    card = DoublingCard.objects.get()
    tomorrow = (clock.now().date() + dt.timedelta(days=1)).isoformat()
    chosen = run("chooseDoublingDay", f'cardId: {lit(encode_id("DoublingCard", card.pk))}, day: {lit(tomorrow)}')
    assert chosen["card"]["status"] == "SCHEDULED" and chosen["card"]["day"] == tomorrow
    assert sorted(dict.fromkeys(run.seen)) == sorted(
        name for name, why in NOT_WALKABLE.items() if "tests/referrals" in why)


def test_my_objects_refetch_by_node_and_strangers_get_null(gql, sign_in, campaign):
    ada = sign_in("+8613900000161")["tokens"]["accessToken"]
    share = gql(SHARE, {"c": campaign_id(campaign), "ch": "CHAT"}, token=ada)["data"]["createShareCode"]
    gid = share["shareCode"]["id"]
    node = "query($i: ID!) { node(id: $i) { __typename id ... on ShareCode { code } } }"
    assert gql(node, {"i": gid}, token=ada)["data"]["node"] == {"__typename": "ShareCode", "id": gid,
                                                                 "code": share["shareCode"]["code"]}
    eve = sign_in("+8613900000162")["tokens"]["accessToken"]
    assert gql(node, {"i": gid}, token=eve)["data"]["node"] is None
    assert gql(node, {"i": campaign_id(campaign)}, token=eve)["data"]["node"]["__typename"] == "ReferralCampaign"
