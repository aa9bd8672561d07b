"""Rewards: after a qualifying event settles, the referrer's rate boost (stacking to the cap), the referee's
welcome bonus from the marketing budget, an optional yield-doubling card — or a rejection with a reason code.
Clawback undoes a granted reward when its action is reversed.

Welcome bonus: a real red packet (payments.send_platform_red_packet, through core.platform_packets): one part, paid from the marketing budget
into escrow and charged to the campaign, posted by the platform's red-packet sender in the referee's service
conversation with it; the referee opens it like any red packet. One packet per reward (idempotency key from
the attribution). An unopened packet goes back to the budget when it expires or on clawback, and the
campaign's `spent` goes down with it (`on_packet_refunded`). Called through core.platform_packets: referrals
may not import chat, even through payments.

Locking, always in this order: the event row (caller) → [clawback: the welcome packet] → the campaign row
(budget) → the referrer's ReferrerState row (cap, daily count) → ledger accounts (inside wallet.services,
ascending ids). A packet's expiry locks packet → campaign → ledger, the same order. Concurrent qualifications
of one referrer therefore serialize and never pass the cap; rewards of one campaign serialize on its budget.
"""

from __future__ import annotations

import datetime as dt
import secrets

from django.db.models import F, Sum

from backend.accounts.models import Device, User
from backend.core import activity_hooks, clock, platform_packets
from backend.core.ids import encode_id
from backend.wallet import services as wallet
from backend.wallet.models import LedgerAccount
from backend.wallet.money import format_fen
from backend.wallet.selectors import wallet_of

from ..limits import referrals_setting
from ..models import AbuseFlag, Campaign, DoublingCard, QualifyingEvent, RateBoost, ReferrerState, Reward
from ._common import BudgetExhausted, Reason, device_hash, tell

BONUS_KIND = "referral_bonus"
CLAWBACK_KIND = "referral_clawback"
DOUBLING_KIND = "referral_doubling"
WELCOME_GREETING = "新人红包，欢迎加入"


def draw_welcome_amount(campaign: Campaign) -> int:
    """A uniformly random whole number of fen in the campaign's range, from the OS CSPRNG."""
    return campaign.welcome_min + secrets.randbelow(campaign.welcome_max - campaign.welcome_min + 1)


def lock_referrer(user_id: int) -> None:
    """Take the referrer's lock row (created on first use)."""
    ReferrerState.objects.get_or_create(user_id=user_id)
    ReferrerState.objects.select_for_update().get(user_id=user_id)


def boost_sum(user_id: int, scope: str, at: dt.datetime) -> int:
    return (RateBoost.objects.filter(user_id=user_id, scope=scope, starts_at__lte=at, ends_at__gt=at,
                                     revoked_at__isnull=True).aggregate(s=Sum("bp"))["s"] or 0)


def _self_referral_reason(referrer_id: int, referee_id: int, attribution_device: str) -> str:
    """The self-referral rule the pair breaks, or ''. One verified phone is one account (User.phone_index is
    unique), so 'same phone' is the same-user rule; one person with two phone numbers shows up as two accounts
    verified with the same ID number (equal blind indexes, set by accounts at KYC)."""
    if referrer_id == referee_id:
        return Reason.SELF_REFERRAL_SAME_USER
    id_indexes = dict(User.objects.filter(pk__in=[referrer_id, referee_id]).exclude(id_number_index="")
                      .values_list("pk", "id_number_index"))
    if len(id_indexes) == 2 and id_indexes[referrer_id] == id_indexes[referee_id]:
        return Reason.SELF_REFERRAL_SAME_ID_NUMBER
    referrer_devices = {device_hash(i) for i in Device.objects.filter(user_id=referrer_id)
                        .exclude(installation_id="").values_list("installation_id", flat=True)}
    referee_devices = {device_hash(i) for i in Device.objects.filter(user_id=referee_id)
                       .exclude(installation_id="").values_list("installation_id", flat=True)}
    if attribution_device:
        referee_devices.add(attribution_device)
    if referrer_devices & referee_devices:
        return Reason.SELF_REFERRAL_SAME_DEVICE
    return ""


def _rewards_today(referrer_id: int, now: dt.datetime) -> int:
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return Reward.objects.filter(referrer_id=referrer_id, created_at__gte=start,
                                 status__in=[Reward.Status.GRANTED, Reward.Status.CLAWED_BACK]).count()


def decide(*, event: QualifyingEvent) -> Reward:
    """Grant or reject the reward of a settled event (the caller holds the event's row lock)."""
    attribution = event.attribution
    campaign = Campaign.objects.select_for_update().get(pk=attribution.campaign_id)
    lock_referrer(attribution.referrer_id)
    now = clock.now()
    attribution.qualified_at = now
    attribution.save(update_fields=["qualified_at"])
    reward = Reward(attribution=attribution, event=event, campaign=campaign, referrer_id=attribution.referrer_id,
                    referee_id=attribution.referee_id, created_at=now)
    reason = _self_referral_reason(attribution.referrer_id, attribution.referee_id, attribution.device_hash)
    if reason:
        AbuseFlag.objects.create(user_id=attribution.referrer_id, kind=AbuseFlag.Kind.SELF_REFERRAL,
                                 detail=f"{reason} for referee {attribution.referee_id}")
    elif _rewards_today(attribution.referrer_id, now) >= campaign.daily_rewards_per_referrer:
        reason = Reason.DAILY_REWARD_CAP
        AbuseFlag.objects.create(user_id=attribution.referrer_id, kind=AbuseFlag.Kind.DAILY_CAP,
                                 detail=f"more than {campaign.daily_rewards_per_referrer} rewards on {now.date()}")
    if not reason:
        amount = draw_welcome_amount(campaign)
        try:
            packet = platform_packets.send(
                recipient_id=attribution.referee_id, amount=amount, kind=BONUS_KIND, allocation=campaign,
                idempotency_key=f"referrals-welcome-{attribution.pk}", greeting=WELCOME_GREETING)
        except BudgetExhausted:
            reason = Reason.BUDGET_EXHAUSTED
        else:
            reward.welcome_amount, reward.welcome_packet_id, reward.welcome_entry_id = (
                packet.total, packet.packet_id, packet.send_entry_id)
    if reason:
        reward.status, reward.reason_code = Reward.Status.REJECTED, reason
        reward.save()
        return reward
    headroom = max(0, campaign.cap_bp - boost_sum(attribution.referrer_id, campaign.scope, now))
    reward.boost_bp = min(campaign.boost_bp, headroom)
    reward.status = Reward.Status.GRANTED
    reward.save()
    if reward.boost_bp:
        RateBoost.objects.create(user_id=reward.referrer_id, scope=campaign.scope, bp=reward.boost_bp,
                                 cap_bp=campaign.cap_bp, reward=reward, starts_at=now,
                                 ends_at=now + dt.timedelta(days=campaign.boost_days))
    if campaign.awards_doubling_card:
        DoublingCard.objects.create(user_id=reward.referrer_id, scope=campaign.scope, campaign=campaign,
                                    reward=reward, expires_at=now + dt.timedelta(
                                        days=referrals_setting("DOUBLING_CARD_VALID_DAYS")))
    activity_hooks.report_activity(user_id=reward.referrer_id, kind="referral_rewarded", amount=0,
                                   reference=f"referrals:reward:{reward.pk}", occurred_at=now)
    tell(reward.referee_id, event="referrals.welcome_bonus", title="新人红包",
         body=f"欢迎加入！你有一个 {format_fen(reward.welcome_amount)} 的新人红包，请在「圈子红包」会话中领取。",
         payload={"red_packet_id": encode_id("RedPacket", reward.welcome_packet_id)})
    tell(reward.referrer_id, event="referrals.reward_granted", title="邀请奖励",
         body=f"好友已完成首笔出借，你的收益率提升 {reward.boost_bp / 100:.2f}%。" if reward.boost_bp
         else "好友已完成首笔出借；你的加息已达上限。")
    return reward


def claw_back(*, event: QualifyingEvent) -> Reward | None:
    """Undo the reward of a reversed event (the caller holds the event lock): the boost is revoked, unused
    doubling cards are revoked, and the welcome bonus comes back from the referee's wallet as far as it is
    still there; what was already spent is recorded as owed."""
    reward = Reward.objects.filter(event=event).first()
    if reward is None or reward.status != Reward.Status.GRANTED:
        return reward
    if reward.welcome_packet_id is not None:  # unopened: back to the budget (on_packet_refunded books it)
        platform_packets.withdraw(reward.welcome_packet_id)
    campaign = Campaign.objects.select_for_update().get(pk=reward.campaign_id)
    lock_referrer(reward.referrer_id)
    reward = Reward.objects.select_for_update().get(pk=reward.pk)
    now = clock.now()
    RateBoost.objects.filter(reward=reward, revoked_at__isnull=True).update(revoked_at=now)
    DoublingCard.objects.filter(reward=reward, status__in=[DoublingCard.Status.UNUSED,
                                                           DoublingCard.Status.SCHEDULED]
                                ).update(status=DoublingCard.Status.REVOKED)
    recovered = 0
    opened = reward.welcome_amount - reward.welcome_refunded  # what reached the referee's wallet
    source = wallet_of(reward.referee_id)
    if opened and source is not None:
        budget = wallet.system_account(LedgerAccount.Kind.MARKETING_BUDGET)
        wallet.lock_accounts([source.pk, budget.pk])
        source.refresh_from_db()
        recovered = max(0, min(source.available, opened))
        if recovered and not source.is_frozen:
            reward.clawback_entry = wallet.transfer(
                source_id=source.pk, destination_id=budget.pk, amount=recovered, kind=CLAWBACK_KIND,
                idempotency_key=f"referrals:clawback:{reward.pk}", memo="新人红包收回 Welcome bonus reversed").entry
        else:
            recovered = 0
    reward.recovered_amount = recovered
    reward.owed_amount = opened - recovered
    reward.status, reward.reason_code, reward.clawed_back_at = (Reward.Status.CLAWED_BACK,
                                                                Reason.ACTION_REVERSED, now)
    reward.save(update_fields=["recovered_amount", "owed_amount", "status", "reason_code", "clawed_back_at",
                               "clawback_entry"])
    campaign.spent -= recovered
    campaign.save(update_fields=["spent"])
    activity_hooks.report_reversal(reference=f"referrals:reward:{reward.pk}", occurred_at=now)
    tell(reward.referrer_id, event="referrals.reward_clawed_back", title="邀请奖励已撤销",
         body="好友的出借已撤销，相应加息已取消。")
    if reward.welcome_amount:
        tell(reward.referee_id, event="referrals.welcome_bonus_reversed", title="新人红包已收回",
             body=f"出借已撤销，新人红包收回 {format_fen(recovered)}"
             + (f"，尚欠 {format_fen(reward.owed_amount)}。" if reward.owed_amount else "。"))
    return reward



def on_packet_refunded(packet_id: int, amount: int) -> None:
    """core.platform_packets refund listener: an unopened welcome packet's money went back to the marketing
    budget (expired, or withdrawn on clawback), so the campaign gets it back too. Runs in the refunding
    transaction with the packet locked, before the ledger moves (lock order packet → campaign)."""
    reward = Reward.objects.filter(welcome_packet_id=packet_id).first()
    if reward is None:
        return  # another app's platform packet
    Campaign.objects.filter(pk=reward.campaign_id).update(spent=F("spent") - amount)
    Reward.objects.filter(pk=reward.pk).update(welcome_refunded=F("welcome_refunded") + amount)
