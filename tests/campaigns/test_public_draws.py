"""Anyone, signed in or not, can fetch a campaign's draw list — the published seed hash (the seed once the
campaign ended) and every draw's id, odds, roll, slot and outcome — and recompute every draw from the published
seed with nothing but HMAC-SHA256. The list names no user: no user id, name or phone appears in it."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

import pytest

from backend.accounts.ids import user_gid
from backend.campaigns import services
from backend.campaigns.models import Draw, Prize
from backend.core import clock
from backend.core.ids import encode_id

from .conftest import add_prize, give_points, make_campaign, make_coupon_type, new_user

pytestmark = pytest.mark.django_db

LIST = """query($c: ID!, $after: String) { publicDrawList(campaignId: $c) { campaignNumber seedHash seed drawCount
  draws(first: 7, after: $after) { edges { node { number message totalWeight roll slotPrizeNumber prizeNumber
  outcome odds { prizeNumber weight } } } pageInfo { hasNextPage endCursor } } } }"""


def _replay(seed: str, campaign_number: int, draw: dict) -> tuple[int, int | None]:
    """An outsider's replay, independent of the app's code: HMAC, modulo, walk the odds."""
    assert draw["message"] == f"{campaign_number}:{draw['number']}"
    digest = hmac.new(seed.encode("ascii"), draw["message"].encode("ascii"), hashlib.sha256).digest()
    roll = int.from_bytes(digest, "big") % draw["totalWeight"]
    running = 0
    for line in draw["odds"]:
        running += line["weight"]
        if roll < running:
            return roll, line["prizeNumber"]
    raise AssertionError("roll outside the odds")


def _fetch_all(gql, campaign_id: str) -> tuple[dict, list[dict], str]:
    draws, after, raw = [], None, ""
    while True:
        response = gql(LIST, {"c": campaign_id, "after": after}, token=None)
        assert "errors" not in response, response
        raw += json.dumps(response, ensure_ascii=False)
        data = response["data"]["publicDrawList"]
        draws += [e["node"] for e in data["draws"]["edges"]]
        if not data["draws"]["pageInfo"]["hasNextPage"]:
            return data, draws, raw
        after = data["draws"]["pageInfo"]["endCursor"]


def test_an_outsider_replays_every_draw_from_the_published_list(gql, budget):
    campaign = make_campaign(no_prize_weight=3, draw_cost_points=1, budget=3_000)
    add_prize(campaign, kind=Prize.Kind.POINTS, points=5, weight=2, stock=3)
    add_prize(campaign, kind=Prize.Kind.CASH, cash_amount=1_000, weight=2, stock=10)  # budget: 3 of them
    add_prize(campaign, kind=Prize.Kind.COUPON, coupon_type=make_coupon_type(claimable=False), weight=1, stock=2)
    players = [new_user(f"玩家{n}") for n in range(4)]
    for user in players:
        give_points(user, 6)
        for _ in range(6):
            services.draw(user=user, campaign_id=campaign.pk)
    campaign_id = encode_id("MarketingCampaign", campaign.pk)

    running, draws, _ = _fetch_all(gql, campaign_id)  # while it runs: the hash, not the seed
    assert running["seed"] is None and running["seedHash"] == campaign.seed_hash
    assert len(draws) == running["drawCount"] == 24

    clock.advance(campaign.ends_at - clock.now() + dt.timedelta(seconds=1))
    ended, draws, raw = _fetch_all(gql, campaign_id)
    seed = ended["seed"]
    assert hashlib.sha256(seed.encode("ascii")).hexdigest() == ended["seedHash"]
    stored = {d.pk: d for d in Draw.objects.filter(campaign=campaign)}
    assert [d["number"] for d in draws] == sorted(stored)  # every draw, in id order, once
    for draw in draws:
        roll, slot = _replay(seed, ended["campaignNumber"], draw)
        assert (str(roll), slot) == (draw["roll"], draw["slotPrizeNumber"])
        assert (roll, slot) == (int(stored[draw["number"]].roll), stored[draw["number"]].slot_prize_id)
        # a prize is only ever given where the roll pointed; otherwise the outcome says why not
        assert draw["prizeNumber"] in (None, slot)
        assert (draw["outcome"] == "WON") == (draw["prizeNumber"] is not None)
    outcomes = {d["outcome"] for d in draws}
    assert "WON" in outcomes and outcomes & {"OUT_OF_STOCK", "OVER_BUDGET"}  # stock and budget ran out

    # nothing in the list names a player
    for user in players:
        for identifier in (user_gid(user), user.display_name, user.phone, str(user.phone)[-8:]):
            assert identifier and identifier not in raw
    assert '"user' not in raw.lower() and "createdAt" not in raw


def test_an_unknown_or_future_campaign_has_no_list(gql, db):
    future = make_campaign(starts_at=clock.now() + dt.timedelta(days=1))
    for campaign_id in (encode_id("MarketingCampaign", future.pk), encode_id("MarketingCampaign", 10**9)):
        assert gql(LIST, {"c": campaign_id}, token=None)["data"]["publicDrawList"] is None
