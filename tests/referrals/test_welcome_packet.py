"""The welcome bonus is a real red packet the platform sends the new user from the marketing budget: one per
reward, opened like any red packet; unopened, it goes back to the budget (expiry, or clawback) and the
campaign gets it back; the budget never goes negative."""

from __future__ import annotations

import datetime as dt

import pytest

from backend.core import clock
from backend.core.errors import NotFound
from backend.payments import services as payments
from backend.payments.models import RedPacket
from backend.referrals import services
from backend.referrals.models import Reward
from backend.referrals.services import rewards
from backend.wallet import services as wallet
from backend.wallet.models import JournalEntry, LedgerAccount

from .conftest import (
    after_holding,
    assert_ledger_ok,
    balance_of,
    fund_marketing,
    make_campaign,
    marketing_balance,
    open_welcome_packet,
    pledge,
    refer,
)


def escrow_balance() -> int:
    return wallet.system_account(LedgerAccount.Kind.PAYMENTS_ESCROW).balance


def granted(campaign, referrer, reference: str) -> tuple:
    friend = refer(referrer, campaign)
    pledge(friend, reference=reference)
    after_holding(campaign)
    return friend, Reward.objects.get(referee=friend)


def test_one_welcome_packet_per_reward_even_when_sent_again(campaign, referrer):
    friend, reward = granted(campaign, referrer, "pledge:w1")
    again, replayed = payments.send_platform_red_packet(
        recipient_id=friend.pk, amount=reward.welcome_amount, kind=rewards.BONUS_KIND, allocation=campaign,
        idempotency_key=f"referrals-welcome-{reward.attribution_id}", greeting=rewards.WELCOME_GREETING)
    assert replayed and again.pk == reward.welcome_packet_id
    assert RedPacket.objects.count() == 1 and JournalEntry.objects.filter(kind="referral_bonus").count() == 1
    campaign.refresh_from_db()
    assert campaign.spent == reward.welcome_amount
    # A second welcome packet to the same user (another reward) lands in the same platform conversation.
    other = payments.send_platform_red_packet(recipient_id=friend.pk, amount=100, idempotency_key="other-promo-1",
                                              greeting="")[0]
    assert other.conversation_id == reward.welcome_packet.conversation_id


def test_only_the_referee_can_open_it(campaign, referrer):
    friend, reward = granted(campaign, referrer, "pledge:w2")
    with pytest.raises(NotFound):  # not a member of the referee's conversation with the platform
        payments.grab_red_packet(user=referrer, packet_id=reward.welcome_packet_id)
    assert open_welcome_packet(friend) == reward.welcome_amount


def test_an_unopened_packet_expires_back_to_the_budget_and_the_campaign(campaign, referrer):
    before = marketing_balance()
    friend, reward = granted(campaign, referrer, "pledge:w3")
    assert marketing_balance() == before - reward.welcome_amount
    clock.advance(dt.timedelta(days=2))
    assert payments.expire_red_packets() == 1
    reward.refresh_from_db()
    campaign.refresh_from_db()
    assert reward.welcome_refunded == reward.welcome_amount and reward.status == Reward.Status.GRANTED
    assert campaign.spent == 0 and marketing_balance() == before and balance_of(friend) == 0
    with pytest.raises(payments.PacketClosed):
        payments.grab_red_packet(user=friend, packet_id=reward.welcome_packet_id)
    # A later clawback has nothing left to take: nothing owed, no second refund.
    services.reverse_qualifying_event(reference="pledge:w3")
    reward.refresh_from_db()
    assert (reward.status, reward.recovered_amount, reward.owed_amount) == (Reward.Status.CLAWED_BACK, 0, 0)
    campaign.refresh_from_db()
    assert campaign.spent == 0 and marketing_balance() == before
    assert_ledger_ok()


def test_clawback_withdraws_an_unopened_packet(campaign, referrer):
    before = marketing_balance()
    friend, reward = granted(campaign, referrer, "pledge:w4")
    services.reverse_qualifying_event(reference="pledge:w4")
    reward.refresh_from_db()
    assert (reward.status, reward.welcome_refunded, reward.recovered_amount, reward.owed_amount) == (
        Reward.Status.CLAWED_BACK, reward.welcome_amount, 0, 0)
    packet = RedPacket.objects.get(pk=reward.welcome_packet_id)
    assert (packet.status, packet.refunded_amount) == ("expired", reward.welcome_amount)
    with pytest.raises(payments.PacketClosed):  # the card is closed: the referee can no longer open it
        payments.grab_red_packet(user=friend, packet_id=packet.pk)
    campaign.refresh_from_db()
    assert campaign.spent == 0 and marketing_balance() == before and escrow_balance() == 0
    assert payments.expire_red_packets() == 0  # nothing refunded twice
    assert_ledger_ok()


def test_clawback_of_an_opened_packet_recovers_it_from_the_wallet(campaign, referrer):
    before = marketing_balance()
    friend, reward = granted(campaign, referrer, "pledge:w5")
    open_welcome_packet(friend)
    services.reverse_qualifying_event(reference="pledge:w5")
    reward.refresh_from_db()
    assert (reward.welcome_refunded, reward.recovered_amount, reward.owed_amount) == (0, reward.welcome_amount, 0)
    assert balance_of(friend) == 0 and marketing_balance() == before
    assert_ledger_ok()


def test_no_packet_when_the_marketing_account_cannot_cover_it(db, referrer):
    fund_marketing(10_000)
    campaign = make_campaign(welcome_min=15_000, welcome_max=15_000)
    pledge(refer(referrer, campaign))
    after_holding(campaign)
    reward = Reward.objects.get()
    assert (reward.status, reward.reason_code, reward.welcome_packet_id) == ("rejected", "BUDGET_EXHAUSTED", None)
    assert not RedPacket.objects.exists() and marketing_balance() == 10_000 and escrow_balance() == 0
    assert_ledger_ok()
