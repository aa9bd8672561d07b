"""GraphQL for campaigns: my points and statement, my coupons and claimable coupon types, running campaigns
(with the seed's hash, and the seed once ended), my draws and their public recomputation; mutations to claim
and redeem a coupon and to draw. Thin: services decide, selectors scope."""

from __future__ import annotations

import graphene

from backend.accounts.ids import decode_user
from backend.core import nodes, pagination
from backend.core.errors import PermissionDenied
from backend.core.graphql import BaseMutation, register_app_errors, require_user
from backend.core.ids import decode_id, encode_id, fetch_scoped
from backend.referrals.schema import ReferralCampaign
from backend.wallet.schema import Fen

from . import selectors, services
from .models import Campaign as CampaignModel
from .models import Coupon as CouponModel
from .models import CouponType as CouponTypeModel
from .models import Draw as DrawModel

CampaignError = register_app_errors("Campaign", "backend.campaigns", include=("backend.wallet", "backend.referrals"))

CAMPAIGN, COUPON, COUPON_TYPE, DRAW, PRIZE = "MarketingCampaign", "Coupon", "CouponType", "LotteryDraw", "Prize"


def _plain(value: object) -> object:
    return getattr(value, "value", value)


class PointsEntryKind(graphene.Enum):
    EARN = "earn"
    SPEND = "spend"
    EXPIRE = "expire"
    REVERSE = "reverse"


class PointsStatementLine(graphene.ObjectType):
    """One movement of my points: positive earned, negative spent / expired / reversed."""

    kind = graphene.Field(PointsEntryKind, required=True)
    points = graphene.Int(required=True)
    memo = graphene.String(required=True)
    created_at = graphene.DateTime(required=True)


PointsStatementConnection = pagination.connection_type(PointsStatementLine, name="PointsStatement")


class MyPoints(graphene.ObjectType):
    balance = graphene.Int(required=True, description="Always the sum of my statement.")
    statement = graphene.Field(PointsStatementConnection, required=True, first=graphene.Int(), after=graphene.String(),
                               description="Newest first.")

    @staticmethod
    def resolve_statement(root, info, first=None, after=None):
        size = pagination.page_size(first)
        rows = selectors.statement_of(root.user)
        after_id = pagination.decode_int_cursor(after, kind="points")
        if after_id is not None:
            rows = rows.filter(pk__lt=after_id)
        page = list(rows[: size + 1])
        has_next, page = len(page) > size, page[:size]
        edges = [PointsStatementConnection.Edge(
            node=PointsStatementLine(kind=leg.entry.kind, points=leg.amount, memo=leg.entry.memo,
                                     created_at=leg.entry.created_at),
            cursor=pagination.encode_cursor("points", leg.pk)) for leg in page]
        return PointsStatementConnection(edges=edges, page_info=pagination.page_info(
            edges, has_next=has_next, has_previous=after_id is not None))


class CouponKind(graphene.Enum):
    CASH_BACK = "cash_back"
    FEE_WAIVER = "fee_waiver"
    RATE_BOOST = "rate_boost"


class CouponType(graphene.ObjectType):
    class Meta:
        interfaces = (graphene.relay.Node,)

    name = graphene.String(required=True)
    kind = graphene.Field(CouponKind, required=True)
    value = graphene.Int(required=True, description="Cash-back: fen. Rate boost: basis points. Fee waiver: 0.")
    remaining_stock = graphene.Int(required=True)
    per_user_limit = graphene.Int(required=True)
    valid_from = graphene.DateTime(required=True)
    valid_until = graphene.DateTime(required=True)

    @staticmethod
    def resolve_kind(root, info):
        return _plain(root.kind)

    @staticmethod
    def resolve_remaining_stock(root, info):
        return max(0, root.stock - root.claimed_count)


class CouponStatus(graphene.Enum):
    AVAILABLE = "available"
    REDEEMED = "redeemed"
    EXPIRED = "expired"


class Coupon(graphene.ObjectType):
    class Meta:
        interfaces = (graphene.relay.Node,)

    coupon_type = graphene.Field(CouponType, required=True)
    status = graphene.Field(CouponStatus, required=True)
    issued_at = graphene.DateTime(required=True)
    expires_at = graphene.DateTime(required=True)
    redeemed_at = graphene.DateTime()

    @staticmethod
    def resolve_status(root, info):
        return _plain(root.status)


class CampaignTemplate(graphene.Enum):
    TRANSACTION_LOTTERY = "transaction_lottery"
    POINTS_LOTTERY = "points_lottery"
    SHARE_REWARD = "share_reward"


class PrizeKind(graphene.Enum):
    POINTS = "points"
    COUPON = "coupon"
    CASH = "cash"


class Prize(graphene.ObjectType):
    """One line of the odds table (in id order; "no prize" comes last with the campaign's noPrizeWeight)."""

    id = graphene.ID(required=True)
    number = graphene.Int(required=True, description="The prize's number in the odds table of a draw.")
    name = graphene.String(required=True)
    kind = graphene.Field(PrizeKind, required=True)
    points = graphene.Int(required=True)
    cash_amount = graphene.Field(Fen, required=True)
    weight = graphene.Int(required=True)
    stock = graphene.Int(required=True)
    remaining_stock = graphene.Int(required=True)

    @staticmethod
    def resolve_id(root, info):
        return encode_id(PRIZE, root.pk)

    @staticmethod
    def resolve_number(root, info):
        return root.pk

    @staticmethod
    def resolve_kind(root, info):
        return _plain(root.kind)

    @staticmethod
    def resolve_remaining_stock(root, info):
        return max(0, root.stock - root.awarded)


class MarketingCampaign(graphene.ObjectType):
    """A campaign: where and when, its odds table, the SHA-256 of its draw seed, and the seed once it ended."""

    class Meta:
        interfaces = (graphene.relay.Node,)

    number = graphene.Int(required=True, description="The campaign id inside the HMAC message of its draws.")
    name = graphene.String(required=True)
    template = graphene.Field(CampaignTemplate, required=True)
    regions = graphene.List(graphene.NonNull(graphene.String), required=True, description="Empty: everywhere.")
    starts_at = graphene.DateTime(required=True)
    ends_at = graphene.DateTime(required=True)
    seed_hash = graphene.String(required=True, description="SHA-256 (hex) of the seed's ASCII text.")
    seed = graphene.String(description="Revealed once the campaign has ended; null before.")
    trigger_kind = graphene.String(required=True)
    trigger_min_amount = graphene.Field(Fen, required=True)
    draw_cost_points = graphene.Int(required=True)
    daily_draws_per_user = graphene.Int(required=True)
    no_prize_weight = graphene.Int(required=True)
    prizes = graphene.List(graphene.NonNull(Prize), required=True, first=graphene.Int(default_value=20),
                           description="The odds table, in id order.")
    my_draw_chances = graphene.Int(required=True, description="Unused draws my transactions earned.")
    referral_campaign = graphene.Field(ReferralCampaign, description="Share reward: the referrals campaign.")

    @staticmethod
    def resolve_number(root, info):
        return root.pk

    @staticmethod
    def resolve_template(root, info):
        return _plain(root.template)

    @staticmethod
    def resolve_regions(root, info):
        return root.region_list

    @staticmethod
    def resolve_seed(root, info):
        return root.revealed_seed()

    @staticmethod
    def resolve_prizes(root, info, first=20):
        return list(root.prizes.order_by("id")[: pagination.page_size(first)])

    @staticmethod
    def resolve_my_draw_chances(root, info):
        return root.chances.filter(user=require_user(info), used_at__isnull=True).count()


class DrawOutcome(graphene.Enum):
    WON = "won"
    NO_PRIZE = "no_prize"
    OUT_OF_STOCK = "out_of_stock"
    OVER_BUDGET = "over_budget"


class OddsLine(graphene.ObjectType):
    prize_number = graphene.Int(description="Null: no prize.")
    weight = graphene.Int(required=True)


class LotteryDraw(graphene.ObjectType):
    """One of my draws, with what a verifier needs: its number, the odds table at draw time, the roll."""

    class Meta:
        interfaces = (graphene.relay.Node,)

    number = graphene.Int(required=True, description="The draw id inside the HMAC message.")
    campaign = graphene.Field(MarketingCampaign, required=True)
    roll = graphene.String(required=True, description="HMAC-SHA256(seed, \"<campaign number>:<draw number>\") "
                                                      "mod totalWeight, decimal.")
    total_weight = graphene.Int(required=True)
    odds = graphene.List(graphene.NonNull(OddsLine), required=True, first=graphene.Int(default_value=20))
    slot_prize = graphene.Field(Prize, description="What the roll picked (null: the no-prize line).")
    prize = graphene.Field(Prize, description="What I won (null when the slot was no prize, out of stock or "
                                              "over budget).")
    outcome = graphene.Field(DrawOutcome, required=True)
    points_spent = graphene.Int(required=True)
    coupon = graphene.Field(Coupon)
    created_at = graphene.DateTime(required=True)

    @staticmethod
    def resolve_number(root, info):
        return root.pk

    @staticmethod
    def resolve_odds(root, info, first=20):
        return [OddsLine(prize_number=p, weight=w) for p, w in root.odds[: pagination.page_size(first)]]

    @staticmethod
    def resolve_outcome(root, info):
        return _plain(root.outcome)


class DrawVerification(graphene.ObjectType):
    seed_matches_hash = graphene.Boolean(required=True)
    roll = graphene.String(required=True)
    slot_prize_number = graphene.Int()
    matches = graphene.Boolean(required=True, description="The seed matches the hash and gives this draw's roll "
                                                          "and slot.")


class PublicDraw(graphene.ObjectType):
    """One draw as anyone may see it: what a replay needs, nothing about who drew (no user, no time)."""

    number = graphene.Int(required=True, description="The draw's id (a sequence number shared by all campaigns' "
                                                      "draws, naming no user), inside the HMAC message.")
    message = graphene.String(required=True, description='The HMAC message: "<campaign number>:<draw number>".')
    odds = graphene.List(graphene.NonNull(OddsLine), required=True,
                         description="The odds table at draw time, in order (prize number null: no prize).")
    total_weight = graphene.Int(required=True)
    roll = graphene.String(required=True, description="HMAC-SHA256(seed, message) mod totalWeight, decimal.")
    slot_prize_number = graphene.Int(description="The odds line the roll landed on (null: no prize).")
    outcome = graphene.Field(DrawOutcome, required=True,
                             description="WON, or why the picked prize was not given (out of stock, over budget).")
    prize_number = graphene.Int(description="The prize given (null: none).")

    @staticmethod
    def resolve_number(root, info):
        return root.pk

    @staticmethod
    def resolve_message(root, info):
        return f"{root.campaign_id}:{root.pk}"

    @staticmethod
    def resolve_odds(root, info):
        return [OddsLine(prize_number=p, weight=w) for p, w in root.odds]

    @staticmethod
    def resolve_slot_prize_number(root, info):
        return root.slot_prize_id

    @staticmethod
    def resolve_outcome(root, info):
        return _plain(root.outcome)

    @staticmethod
    def resolve_prize_number(root, info):
        return root.prize_id


PublicDrawConnection = pagination.connection_type(PublicDraw, name="PublicDraws")


class PublicDrawList(graphene.ObjectType):
    """Everything an outsider needs to recompute every draw of a campaign (docs/campaigns.md has the recipe):
    the seed's published hash from the start, the seed once the campaign ended, and every draw in id order."""

    campaign_number = graphene.Int(required=True, description="The campaign id inside each HMAC message.")
    name = graphene.String(required=True)
    starts_at = graphene.DateTime(required=True)
    ends_at = graphene.DateTime(required=True)
    seed_hash = graphene.String(required=True, description="SHA-256 (hex) of the seed's ASCII text.")
    seed = graphene.String(description="Revealed once the campaign has ended; null before.")
    draw_count = graphene.Int(required=True)
    draws = graphene.Field(PublicDrawConnection, required=True, first=graphene.Int(), after=graphene.String(),
                           description="In id order; page with `after` until hasNextPage is false.")

    @staticmethod
    def resolve_campaign_number(root, info):
        return root.pk

    @staticmethod
    def resolve_seed(root, info):
        return root.revealed_seed()

    @staticmethod
    def resolve_draw_count(root, info):
        return root.draws.count()

    @staticmethod
    def resolve_draws(root, info, first=None, after=None):
        size = pagination.page_size(first)
        rows = selectors.public_draws(root)
        after_id = pagination.decode_int_cursor(after, kind="draws")
        if after_id is not None:
            rows = rows.filter(pk__gt=after_id)
        page = list(rows[: size + 1])
        has_next, page = len(page) > size, page[:size]
        edges = [PublicDrawConnection.Edge(node=d, cursor=pagination.encode_cursor("draws", d.pk)) for d in page]
        return PublicDrawConnection(edges=edges, page_info=pagination.page_info(
            edges, has_next=has_next, has_previous=after_id is not None))


class Query(graphene.ObjectType):
    my_points = graphene.Field(MyPoints, required=True)
    my_coupons = graphene.List(graphene.NonNull(Coupon), required=True, status=graphene.Argument(CouponStatus),
                               first=graphene.Int(default_value=50))
    claimable_coupon_types = graphene.List(graphene.NonNull(CouponType), required=True,
                                           first=graphene.Int(default_value=50))
    marketing_campaigns = graphene.List(graphene.NonNull(MarketingCampaign), required=True,
                                        first=graphene.Int(default_value=20),
                                        description="Campaigns in my region that have started (ended ones show "
                                                    "their seed).")
    my_draws = graphene.List(graphene.NonNull(LotteryDraw), required=True, campaign_id=graphene.ID(),
                             first=graphene.Int(default_value=20))
    public_draw_list = graphene.Field(PublicDrawList, campaign_id=graphene.ID(required=True),
                                      description="No sign-in needed: a started campaign's seed hash (seed once "
                                                  "ended) and every draw, anonymised, for anyone to replay. Null "
                                                  "for an unknown or not yet started campaign.")
    verify_draw = graphene.Field(DrawVerification, required=True, draw_id=graphene.ID(required=True),
                                 seed=graphene.String(required=True),
                                 description="Recompute one of my draws from a seed (docs/campaigns.md has the "
                                             "recipe to do it offline).")

    @staticmethod
    def resolve_my_points(root, info):
        user = require_user(info)
        result = MyPoints(balance=selectors.points_balance(user))
        result.user = user
        return result

    @staticmethod
    def resolve_my_coupons(root, info, status=None, first=50):
        rows = selectors.coupons_of(require_user(info))
        if status is not None:
            rows = rows.filter(status=_plain(status))
        return list(rows.order_by("-id")[: pagination.page_size(first)])

    @staticmethod
    def resolve_claimable_coupon_types(root, info, first=50):
        return selectors.claimable_coupon_types(require_user(info))[: pagination.page_size(first)]

    @staticmethod
    def resolve_marketing_campaigns(root, info, first=20):
        return list(selectors.campaigns_for(require_user(info)).order_by("-starts_at", "-id")
                    [: pagination.page_size(first)])

    @staticmethod
    def resolve_my_draws(root, info, campaign_id=None, first=20):
        rows = selectors.draws_of(require_user(info))
        if campaign_id is not None:
            rows = rows.filter(campaign_id=decode_id(campaign_id, type_name=CAMPAIGN, field="campaignId"))
        return list(rows.order_by("-id")[: pagination.page_size(first)])

    @staticmethod
    def resolve_public_draw_list(root, info, campaign_id):
        pk = decode_id(campaign_id, type_name=CAMPAIGN, field="campaignId")
        return selectors.public_campaigns().filter(pk=pk).first()

    @staticmethod
    def resolve_verify_draw(root, info, draw_id, seed):
        user = require_user(info)
        draw = fetch_scoped(draw_id, type_name=DRAW, field="drawId", scoped=selectors.draws_of(user))
        result = services.verify_draw(draw=draw, seed=seed)
        return DrawVerification(seed_matches_hash=result["seed_matches_hash"], roll=str(result["roll"]),
                                slot_prize_number=result["slot_prize_id"], matches=result["matches"])


class ClaimCoupon(BaseMutation):
    """Claim a coupon of a claimable type (stock, validity, my branch/tier, per-user limit)."""

    class Arguments:
        coupon_type_id = graphene.ID(required=True)

    coupon = graphene.Field(Coupon)

    @classmethod
    def perform(cls, root, info, coupon_type_id):
        user = require_user(info)
        pk = decode_id(coupon_type_id, type_name=COUPON_TYPE, field="couponTypeId")
        return {"coupon": services.claim_coupon(user=user, coupon_type_id=pk)}


class RedeemCoupon(BaseMutation):
    """Use one of my coupons, exactly once: `reference` names what it was used on; the same reference again
    returns the same redemption (replayed). Cash-back is paid into my wallet."""

    class Arguments:
        coupon_id = graphene.ID(required=True)
        reference = graphene.String(required=True)

    coupon = graphene.Field(Coupon)
    replayed = graphene.Boolean()

    @classmethod
    def perform(cls, root, info, coupon_id, reference):
        user = require_user(info)
        coupon = fetch_scoped(coupon_id, type_name=COUPON, field="couponId", scoped=selectors.coupons_of(user))
        coupon, replayed = services.redeem_coupon(user=user, coupon_id=coupon.pk, reference=reference)
        return {"coupon": coupon, "replayed": replayed}


class IssueCoupon(BaseMutation):
    """Operations staff only: give a customer a coupon (validity, their branch/tier, stock and per-user limit
    apply; any coupon type, claimable or not). The same idempotency key again returns the same coupon."""

    class Arguments:
        coupon_type_id = graphene.ID(required=True)
        user_id = graphene.ID(required=True)
        reason = graphene.String(required=True)
        idempotency_key = graphene.String(required=True)

    coupon = graphene.Field(Coupon)
    replayed = graphene.Boolean()

    @classmethod
    def perform(cls, root, info, coupon_type_id, user_id, reason, idempotency_key):
        staff = require_user(info)
        if not staff.is_staff:
            raise PermissionDenied("Only operations staff may issue coupons.", code="STAFF_ONLY")
        coupon, replayed = services.issue_coupon(
            staff=staff, user_id=decode_user(user_id, field="userId"),
            coupon_type_id=decode_id(coupon_type_id, type_name=COUPON_TYPE, field="couponTypeId"),
            reason=reason, idempotency_key=idempotency_key)
        return {"coupon": coupon, "replayed": replayed}


class DrawLottery(BaseMutation):
    """Draw once in a lottery campaign (uses a draw my transaction earned, or the campaign's points price)."""

    class Arguments:
        campaign_id = graphene.ID(required=True)

    draw = graphene.Field(LotteryDraw)

    @classmethod
    def perform(cls, root, info, campaign_id):
        user = require_user(info)
        campaign = fetch_scoped(campaign_id, type_name=CAMPAIGN, field="campaignId",
                                scoped=CampaignModel.objects.filter(is_active=True))
        return {"draw": services.draw(user=user, campaign_id=campaign.pk)}


class Mutation(graphene.ObjectType):
    claim_coupon = ClaimCoupon.Field()
    redeem_coupon = RedeemCoupon.Field()
    draw_lottery = DrawLottery.Field()
    issue_coupon = IssueCoupon.Field()


nodes.register(MarketingCampaign, model=CampaignModel, scoped=selectors.campaigns_for)
nodes.register(Coupon, model=CouponModel, scoped=selectors.coupons_of)
nodes.register(CouponType, model=CouponTypeModel,
               scoped=lambda user: CouponTypeModel.objects.filter(pk__in=[t.pk for t in
                                                                          selectors.claimable_coupon_types(user)]))
nodes.register(LotteryDraw, model=DrawModel, scoped=selectors.draws_of)
