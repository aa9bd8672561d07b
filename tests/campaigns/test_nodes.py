"""Every campaigns node type refetches through node(id:) for who may see it, and is null for anyone else."""

from __future__ import annotations

import pytest

from backend.campaigns import services
from backend.core.ids import encode_id
from tests.chat.conftest import token_for

from .conftest import add_prize, give_points, make_campaign, make_coupon_type, new_user

pytestmark = pytest.mark.django_db

NODE = "query($i: ID!) { node(id: $i) { __typename id } }"


def test_campaigns_objects_refetch_for_who_may_see_them(gql, budget):
    ann, bob = new_user("Ann"), new_user("Bob")
    campaign = make_campaign()
    add_prize(campaign)
    give_points(ann, 100)
    drawn = services.draw(user=ann, campaign_id=campaign.pk)
    coupon_type = make_coupon_type()
    coupon = services.claim_coupon(user=ann, coupon_type_id=coupon_type.pk)
    ids = {"MarketingCampaign": encode_id("MarketingCampaign", campaign.pk),
           "CouponType": encode_id("CouponType", coupon_type.pk),
           "Coupon": encode_id("Coupon", coupon.pk), "LotteryDraw": encode_id("LotteryDraw", drawn.pk)}

    def seen_by(user) -> set[str]:
        token = token_for(user)
        return {name for name, gid in ids.items()
                if gql(NODE, {"i": gid}, token=token)["data"]["node"] == {"__typename": name, "id": gid}}

    assert seen_by(ann) == set(ids)
    # a campaign and a claimable coupon type are for everyone eligible; coupons and draws only for their owner
    assert seen_by(bob) == {"MarketingCampaign", "CouponType"}
