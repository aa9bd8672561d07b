"""GraphQL for referrals: my share codes and their funnel, my boosts and cap headroom, my welcome bonus, my
yield-doubling cards, the client managers' leaderboard; mutations to share, record a click (anonymous), claim
a referral after sign-up and pick a doubling day. Thin: services decide, selectors scope."""

from __future__ import annotations

import graphene

from backend.accounts.ids import user_gid
from backend.core import nodes
from backend.core.errors import PermissionDenied
from backend.core.graphql import BaseMutation, client_ip, require_user
from backend.core.ids import decode_id, encode_id, fetch_scoped
from backend.wallet.schema import Fen

from . import selectors, services
from .models import Campaign as CampaignModel
from .models import DoublingCard as DoublingCardModel
from .models import Reward
from .models import ShareCode as ShareCodeModel

try:  # the per-app error-code enum (core.graphql.register_app_errors) once the contract work is merged
    from backend.core.graphql import register_app_errors
except ImportError:  # pragma: no cover - before that merge every mutation shares the generic Error type
    register_app_errors = None
if register_app_errors is not None:  # pragma: no branch
    ReferralsError = register_app_errors("Referrals", "backend.referrals", include=("backend.wallet",))

CAMPAIGN = "ReferralCampaign"
SHARE_CODE = "ShareCode"
CARD = "DoublingCard"


def _plain(value: object) -> object:
    return getattr(value, "value", value)


class ReferralFunnel(graphene.ObjectType):
    """shares → clicks → sign-ups → qualified → rewarded."""

    shares = graphene.Int(required=True)
    clicks = graphene.Int(required=True, description="Distinct devices per day that opened the link.")
    signups = graphene.Int(required=True)
    qualified = graphene.Int(required=True, description="Sign-ups whose qualifying action passed its holding.")
    rewarded = graphene.Int(required=True, description="Qualified and rewarded (not rejected or clawed back).")


class ReferralCampaign(graphene.ObjectType):
    """A running share-to-earn campaign: what sharing it earns."""

    class Meta:
        interfaces = (graphene.relay.Node,)

    name = graphene.String(required=True)
    scope = graphene.String(required=True, description='"lending" or "lending:<product>".')
    boost_bp = graphene.Int(required=True, description="Rate boost per qualified friend, basis points.")
    cap_bp = graphene.Int(required=True, description="Most the boosts add up to, basis points.")
    boost_days = graphene.Int(required=True)
    welcome_min = graphene.Field(Fen, required=True)
    welcome_max = graphene.Field(Fen, required=True)
    qualifying_min_amount = graphene.Field(Fen, required=True)
    holding_days = graphene.Int(required=True)
    awards_doubling_card = graphene.Boolean(required=True)
    starts_at = graphene.DateTime(required=True)
    ends_at = graphene.DateTime()


class ShareChannel(graphene.Enum):
    CHAT = "chat"
    MOMENTS = "moments"
    EXTERNAL = "external"


class ShareCode(graphene.ObjectType):
    """My share code for a campaign on a channel, and what it brought."""

    class Meta:
        interfaces = (graphene.relay.Node,)

    code = graphene.String(required=True)
    channel = graphene.Field(ShareChannel, required=True)
    campaign = graphene.Field(ReferralCampaign, required=True)
    created_at = graphene.DateTime(required=True)
    funnel = graphene.Field(ReferralFunnel, required=True)

    @staticmethod
    def resolve_channel(root, info):
        return _plain(root.channel)

    @staticmethod
    def resolve_funnel(root, info):
        precomputed = getattr(root, "_funnel", None)
        if precomputed is not None:
            return precomputed
        return selectors.funnel_of(ShareCodeModel.objects.filter(pk=root.pk))


class RateBoost(graphene.ObjectType):
    scope = graphene.String(required=True)
    bp = graphene.Int(required=True)
    starts_at = graphene.DateTime(required=True)
    ends_at = graphene.DateTime(required=True)


class MyRateBoosts(graphene.ObjectType):
    """My extra yield on a scope now, and how much more my referrals can still add."""

    scope = graphene.String(required=True)
    active_bp = graphene.Int(required=True)
    cap_bp = graphene.Int(required=True)
    headroom_bp = graphene.Int(required=True)
    boosts = graphene.List(graphene.NonNull(RateBoost), required=True)


class WelcomeBonusStatus(graphene.Enum):
    WAITING = "waiting"  # referred; the qualifying action has not passed its holding period yet
    PAID = "granted"
    REJECTED = "rejected"
    REVERSED = "clawed_back"


class WelcomeBonus(graphene.ObjectType):
    """My welcome red packet as a referred new user."""

    status = graphene.Field(WelcomeBonusStatus, required=True)
    amount = graphene.Field(Fen, required=True, description="The red packet sent to me (0 unless paid).")
    red_packet_id = graphene.ID(description="The welcome red packet to open (grabRedPacket), in my conversation "
                                            "with the platform's red-packet sender; null unless paid.")
    opened = graphene.Boolean(required=True, description="I opened the red packet (its money is in my wallet).")
    refunded_amount = graphene.Field(Fen, required=True,
                                     description="Never opened (expired or taken back): returned to the bank.")
    reason_code = graphene.String(description="Why it was rejected or reversed.")
    owed_amount = graphene.Field(Fen, required=True, description="Spent before a reversal: owed back.")
    campaign = graphene.Field(ReferralCampaign, required=True)


class DoublingCardStatus(graphene.Enum):
    UNUSED = "unused"
    SCHEDULED = "scheduled"
    PAID = "paid"
    REVOKED = "revoked"


class DoublingCard(graphene.ObjectType):
    """A yield-doubling card: my lending interest is doubled on the day I choose."""

    class Meta:
        interfaces = (graphene.relay.Node,)

    scope = graphene.String(required=True)
    status = graphene.Field(DoublingCardStatus, required=True)
    day = graphene.Date()
    expires_at = graphene.DateTime(required=True)
    paid_amount = graphene.Field(Fen, required=True)

    @staticmethod
    def resolve_status(root, info):
        return _plain(root.status)


class StaffLeaderRow(graphene.ObjectType):
    rank = graphene.Int(required=True)
    user_id = graphene.ID(required=True)
    display_name = graphene.String(required=True)
    branch = graphene.String(required=True)
    funnel = graphene.Field(ReferralFunnel, required=True)


def _campaign_pk(value: object, field: str = "campaignId") -> int:
    return decode_id(value, type_name=CAMPAIGN, field=field)


class Query(graphene.ObjectType):
    referral_campaigns = graphene.List(graphene.NonNull(ReferralCampaign), required=True,
                                       description="Campaigns running now.")
    my_share_codes = graphene.List(graphene.NonNull(ShareCode), required=True, campaign_id=graphene.ID())
    my_referral_funnel = graphene.Field(ReferralFunnel, required=True, campaign_id=graphene.ID(),
                                        description="My funnel over all my codes (or one campaign's).")
    my_rate_boosts = graphene.Field(MyRateBoosts, required=True, scope=graphene.String(default_value="lending"))
    my_welcome_bonus = graphene.Field(WelcomeBonus, description="Null when I was not referred.")
    my_doubling_cards = graphene.List(graphene.NonNull(DoublingCard), required=True)
    staff_leaderboard = graphene.List(
        graphene.NonNull(StaffLeaderRow), required=True, campaign_id=graphene.ID(), branch=graphene.String(),
        description="Client managers ranked by rewarded referrals (client managers only).")

    @staticmethod
    def resolve_referral_campaigns(root, info):
        require_user(info)
        return list(selectors.running_campaigns())

    @staticmethod
    def _codes(info, campaign_id):
        codes = selectors.share_codes_of(require_user(info))
        if campaign_id is not None:
            codes = codes.filter(campaign_id=_campaign_pk(campaign_id))
        return codes

    @staticmethod
    def resolve_my_share_codes(root, info, campaign_id=None):
        codes = Query._codes(info, campaign_id)
        funnels = selectors.funnels_by_code(codes)
        rows = list(codes.order_by("-id"))
        for row in rows:
            row._funnel = funnels.get(row.pk, selectors.Funnel())
        return rows

    @staticmethod
    def resolve_my_referral_funnel(root, info, campaign_id=None):
        return selectors.funnel_of(Query._codes(info, campaign_id))

    @staticmethod
    def resolve_my_rate_boosts(root, info, scope="lending"):
        user = require_user(info)
        scope = services.clean_scope(scope)
        cap, headroom = selectors.cap_headroom_bp(user, scope)
        return MyRateBoosts(scope=scope, active_bp=selectors.active_boost_bp(user, scope), cap_bp=cap,
                            headroom_bp=headroom, boosts=list(selectors.active_boosts(user, scope).order_by("id")))

    @staticmethod
    def resolve_my_welcome_bonus(root, info):
        user = require_user(info)
        reward = selectors.welcome_bonus_of(user)
        if reward is not None:
            paid = reward.welcome_amount if reward.status != Reward.Status.REJECTED else 0
            packet = reward.welcome_packet
            return WelcomeBonus(status=reward.status, amount=paid, reason_code=reward.reason_code or None,
                                red_packet_id=encode_id("RedPacket", packet.pk) if packet else None,
                                opened=bool(packet and packet.grabbed_count), refunded_amount=reward.welcome_refunded,
                                owed_amount=reward.owed_amount, campaign=reward.campaign)
        attribution = selectors.attribution_of(user)
        if attribution is None:
            return None
        return WelcomeBonus(status="waiting", amount=0, opened=False, refunded_amount=0, owed_amount=0,
                            campaign=attribution.campaign)

    @staticmethod
    def resolve_my_doubling_cards(root, info):
        return list(selectors.doubling_cards_of(require_user(info)).order_by("-id")[:100])

    @staticmethod
    def resolve_staff_leaderboard(root, info, campaign_id=None, branch=None):
        user = require_user(info)
        if not user.is_client_manager:
            raise PermissionDenied()
        campaign = None
        if campaign_id is not None:
            campaign = CampaignModel.objects.filter(pk=_campaign_pk(campaign_id)).first()
            if campaign is None:
                return []
        return [StaffLeaderRow(rank=n, user_id=user_gid(row.user_id), display_name=row.display_name,
                               branch=row.branch, funnel=row.funnel)
                for n, row in enumerate(selectors.staff_leaderboard(campaign, branch=branch), start=1)]


class CreateShareCode(BaseMutation):
    """Share a campaign: my code for it on this channel (the same code every time; each call counts a share)."""

    class Arguments:
        campaign_id = graphene.ID(required=True)
        channel = graphene.Argument(ShareChannel, required=True)

    share_code = graphene.Field(ShareCode)

    @classmethod
    def perform(cls, root, info, campaign_id, channel):
        user = require_user(info)
        campaign = fetch_scoped(campaign_id, type_name=CAMPAIGN, field="campaignId",
                                scoped=selectors.running_campaigns())
        share = services.create_share_code(user=user, campaign_id=campaign.pk, channel=_plain(channel))
        return {"share_code": share}


class RecordShareClick(BaseMutation):
    """Someone opened a share link (no sign-in needed). Counted once per code, device and day."""

    class Arguments:
        code = graphene.String(required=True)
        device_id = graphene.String(required=True, description="The app installation or browser id.")

    counted = graphene.Boolean(description="False when this device already clicked today.")

    @classmethod
    def perform(cls, root, info, code, device_id):
        return {"counted": services.record_click(code=code, device_id=device_id,
                                                 client_ip=client_ip(info.context))}


class ClaimReferral(BaseMutation):
    """Right after signing up: say which share code brought me. Once per account, within the claim window."""

    class Arguments:
        code = graphene.String(required=True)
        device_id = graphene.String()

    campaign = graphene.Field(ReferralCampaign)

    @classmethod
    def perform(cls, root, info, code, device_id=None):
        attribution = services.claim_referral(user=require_user(info), code=code, device_id=device_id)
        return {"campaign": attribution.campaign}


class ChooseDoublingDay(BaseMutation):
    """Pick the day one of my yield-doubling cards doubles my lending interest (tomorrow at the earliest)."""

    class Arguments:
        card_id = graphene.ID(required=True)
        day = graphene.Date(required=True)

    card = graphene.Field(DoublingCard)

    @classmethod
    def perform(cls, root, info, card_id, day):
        user = require_user(info)
        card = fetch_scoped(card_id, type_name=CARD, field="cardId", scoped=selectors.doubling_cards_of(user))
        return {"card": services.choose_doubling_day(user=user, card_id=card.pk, day=day)}


class Mutation(graphene.ObjectType):
    create_share_code = CreateShareCode.Field()
    record_share_click = RecordShareClick.Field()
    claim_referral = ClaimReferral.Field()
    choose_doubling_day = ChooseDoublingDay.Field()


nodes.register(ReferralCampaign, model=CampaignModel, scoped=lambda user: selectors.running_campaigns())
nodes.register(ShareCode, model=ShareCodeModel, scoped=selectors.share_codes_of)
nodes.register(DoublingCard, model=DoublingCardModel, scoped=selectors.doubling_cards_of)
