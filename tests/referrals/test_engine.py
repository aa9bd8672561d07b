"""The referral engine through its services, as loans and the phone will drive it: share → click → sign-up
with a code → qualifying pledge → holding period → boost and welcome bonus through the ledger; the cap, the
clawback, every abuse rule and an exhausted budget."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command

from backend.chat import events
from backend.core import clock
from backend.core.errors import DomainError, NotFound
from backend.notifications.models import Notification
from backend.referrals import selectors, services
from backend.referrals.models import AbuseFlag, Attribution, QualifyingEvent, RateBoost, Reward
from backend.wallet import services as wallet
from backend.wallet.models import JournalEntry
from tests.conftest import befriend

from .conftest import (
    KIND,
    add_device,
    after_holding,
    assert_ledger_ok,
    balance_of,
    fund_marketing,
    make_campaign,
    marketing_balance,
    new_user,
    open_welcome_packet,
    pledge,
    refer,
)

pytestmark = pytest.mark.django_db


def test_whole_path_grants_boost_and_pays_welcome_bonus_through_the_ledger(campaign, referrer):
    before = marketing_balance()
    friend = refer(referrer, campaign)
    event = pledge(friend, 100_000)
    assert event.status == QualifyingEvent.Status.HOLDING
    assert selectors.active_boost_bp(referrer, "lending") == 0

    # Not before the holding period has passed.
    clock.advance(dt.timedelta(days=campaign.holding_days - 1))
    assert services.process_due_qualifications() == 0
    assert not Reward.objects.exists()

    clock.advance(dt.timedelta(days=1, minutes=1))
    assert services.process_due_qualifications() == 1
    reward = Reward.objects.get()
    assert reward.status == Reward.Status.GRANTED and reward.boost_bp == 30
    assert 5_000 <= reward.welcome_amount <= 50_000
    # The welcome bonus is a real red packet from the platform, waiting in the new user's chat list.
    packet = reward.welcome_packet
    assert (packet.total, packet.count, packet.status, packet.funding) == (reward.welcome_amount, 1, "open",
                                                                           "marketing")
    conversation = packet.conversation
    assert conversation.kind == "service" and conversation.title == "圈子红包"
    assert set(conversation.memberships.values_list("user_id", flat=True)) == {friend.pk, packet.sender_id}
    card = events.card_document(conversation.messages.get(pk=packet.message_id))
    assert card["kind"] == "red_packet" and card["state"]["total"] == reward.welcome_amount
    assert marketing_balance() == before - reward.welcome_amount  # in escrow until opened
    assert balance_of(friend) == 0
    assert reward.welcome_entry.kind == "referral_bonus"
    campaign.refresh_from_db()
    assert campaign.spent == reward.welcome_amount
    assert open_welcome_packet(friend) == reward.welcome_amount
    assert balance_of(friend) == reward.welcome_amount
    assert selectors.active_boost_bp(referrer, "lending") == 30
    assert selectors.active_boost_bp(referrer, "lending:p1") == 30  # a product also gets lending-wide boosts
    assert set(Notification.objects.values_list("event", flat=True)) >= {
        "referrals.welcome_bonus", "referrals.reward_granted"}
    # The scan is idempotent.
    assert services.process_due_qualifications() == 0
    assert Reward.objects.count() == 1
    assert_ledger_ok()


def test_boost_expires_and_active_boost_reads_at_a_moment(campaign, referrer):
    campaign.boost_days = 30
    campaign.save()
    pledge(refer(referrer, campaign))
    after_holding(campaign)
    boost = RateBoost.objects.get()
    assert selectors.active_boost_bp(referrer, "lending", at=boost.starts_at - dt.timedelta(seconds=1)) == 0
    assert selectors.active_boost_bp(referrer, "lending", at=boost.ends_at - dt.timedelta(seconds=1)) == 30
    assert selectors.active_boost_bp(referrer, "lending", at=boost.ends_at) == 0


def test_boosts_stack_to_the_cap_and_stop(campaign, referrer):
    campaign.boost_bp, campaign.cap_bp = 30, 100
    campaign.save()
    for _ in range(5):
        pledge(refer(referrer, campaign))
    after_holding(campaign)
    assert list(Reward.objects.order_by("id").values_list("boost_bp", flat=True)) == [30, 30, 30, 10, 0]
    assert selectors.active_boost_bp(referrer, "lending") == 100
    assert selectors.cap_headroom_bp(referrer, "lending") == (100, 0)
    # Every referee still got their welcome bonus.
    assert Reward.objects.filter(status=Reward.Status.GRANTED, welcome_amount__gte=5_000).count() == 5
    assert_ledger_ok()


def test_reversal_within_holding_period_cancels_without_paying(campaign, referrer):
    friend = refer(referrer, campaign)
    event = pledge(friend, reference="pledge:early")
    clock.advance(dt.timedelta(days=2))
    services.reverse_qualifying_event(reference="pledge:early")
    assert after_holding(campaign) == 0
    event.refresh_from_db()
    assert event.status == QualifyingEvent.Status.REVERSED
    assert not Reward.objects.exists() and balance_of(friend) == 0
    # A later pledge qualifies instead.
    pledge(friend)
    after_holding(campaign)
    assert Reward.objects.get().status == Reward.Status.GRANTED


def test_reversal_after_reward_claws_back_boost_and_unspent_bonus(campaign, referrer):
    before = marketing_balance()
    friend = refer(referrer, campaign)
    pledge(friend, reference="pledge:r1")
    after_holding(campaign)
    reward = Reward.objects.get()
    open_welcome_packet(friend)
    services.reverse_qualifying_event(reference="pledge:r1")
    reward.refresh_from_db()
    assert reward.status == Reward.Status.CLAWED_BACK and reward.reason_code == "ACTION_REVERSED"
    assert (reward.recovered_amount, reward.owed_amount) == (reward.welcome_amount, 0)
    assert balance_of(friend) == 0 and marketing_balance() == before
    assert selectors.active_boost_bp(referrer, "lending") == 0
    campaign.refresh_from_db()
    assert campaign.spent == 0
    # One reward per referee: a new pledge after the clawback earns nothing again.
    assert pledge(friend).ignored_reason == "ALREADY_DECIDED"
    # Idempotent.
    services.reverse_qualifying_event(reference="pledge:r1")
    assert JournalEntry.objects.filter(kind="referral_clawback").count() == 1
    assert_ledger_ok()


def test_reversal_after_bonus_was_spent_records_what_is_owed(campaign, referrer):
    friend = refer(referrer, campaign)
    pledge(friend, reference="pledge:r2")
    after_holding(campaign)
    reward = Reward.objects.get()
    open_welcome_packet(friend)
    shop = new_user("shop")
    befriend(friend, shop)  # one pays only people one may reach (core.reach)
    spent = reward.welcome_amount - 1_000
    wallet.send_money(sender=friend, recipient_id=shop.pk, amount=spent, idempotency_key="spend-bonus-1")
    services.reverse_qualifying_event(reference="pledge:r2")
    reward.refresh_from_db()
    assert (reward.recovered_amount, reward.owed_amount) == (1_000, spent)
    assert balance_of(friend) == 0
    assert_ledger_ok()


def test_self_referral_with_own_code_is_refused(campaign, referrer):
    share = services.create_share_code(user=referrer, campaign_id=campaign.pk, channel="chat")
    with pytest.raises(services.SelfReferral):
        services.claim_referral(user=referrer, code=share.code)
    assert not Attribution.objects.exists()


def test_same_device_referral_is_rejected_with_its_reason(campaign, referrer):
    add_device(referrer, "install-ada-phone")
    friend = refer(referrer, campaign, device="install-ada-phone")
    pledge(friend)
    after_holding(campaign)
    reward = Reward.objects.get()
    assert (reward.status, reward.reason_code) == (Reward.Status.REJECTED, "SELF_REFERRAL_SAME_DEVICE")
    assert balance_of(friend) == 0 and selectors.active_boost_bp(referrer, "lending") == 0
    assert AbuseFlag.objects.filter(user=referrer, kind="self_referral").exists()


def test_same_device_found_through_the_referees_signed_in_devices(campaign, referrer):
    add_device(referrer, "install-shared-tablet")
    friend = refer(referrer, campaign)
    add_device(friend, "install-shared-tablet")
    pledge(friend)
    after_holding(campaign)
    assert Reward.objects.get().reason_code == "SELF_REFERRAL_SAME_DEVICE"


def test_daily_reward_cap_per_referrer(campaign, referrer):
    campaign.daily_rewards_per_referrer = 2
    campaign.save()
    for _ in range(3):
        pledge(refer(referrer, campaign))
    after_holding(campaign)
    assert list(Reward.objects.order_by("id").values_list("reason_code", flat=True)) == ["", "", "DAILY_REWARD_CAP"]
    assert AbuseFlag.objects.filter(user=referrer, kind="daily_cap").count() == 1


def test_exhausted_campaign_budget_stops_rewards_cleanly(budget, referrer):
    campaign = make_campaign(budget=60_000, welcome_min=50_000, welcome_max=50_000)
    for _ in range(2):
        pledge(refer(referrer, campaign))
    after_holding(campaign)
    first, second = Reward.objects.order_by("id")
    assert first.status == Reward.Status.GRANTED
    assert (second.status, second.reason_code, second.welcome_amount) == (Reward.Status.REJECTED,
                                                                         "BUDGET_EXHAUSTED", 0)
    campaign.refresh_from_db()
    assert campaign.spent == 50_000 and campaign.remaining == 10_000
    assert selectors.active_boost_bp(referrer, "lending") == 30  # only the first one's
    assert_ledger_ok()


def test_empty_marketing_account_never_goes_negative(db, referrer):
    fund_marketing(20_000)
    campaign = make_campaign(budget=10_000_000, welcome_min=15_000, welcome_max=15_000)
    for _ in range(2):
        pledge(refer(referrer, campaign))
    after_holding(campaign)
    assert list(Reward.objects.order_by("id").values_list("reason_code", flat=True)) == ["", "BUDGET_EXHAUSTED"]
    assert marketing_balance() == 5_000
    assert_ledger_ok()


def test_events_that_do_not_qualify_are_kept_with_their_reason(campaign, referrer):
    stranger = new_user()
    assert pledge(stranger).ignored_reason == "NOT_REFERRED"
    friend = refer(referrer, campaign)
    campaign.qualifying_min_amount = 10_000
    campaign.save()
    assert pledge(friend, 9_999).ignored_reason == "AMOUNT_BELOW_MINIMUM"
    wrong = services.record_qualifying_event(user=friend, kind="deposit", amount=50_000, reference="x:1",
                                             occurred_at=clock.now())
    assert wrong.ignored_reason == "KIND_NOT_QUALIFYING"
    assert pledge(friend, 10_000).status == QualifyingEvent.Status.HOLDING
    assert pledge(friend, 10_000).ignored_reason == "ALREADY_QUALIFYING"
    after_holding(campaign)
    assert Reward.objects.count() == 1


def test_reporting_is_idempotent_on_reference(campaign, referrer):
    friend = refer(referrer, campaign)
    at = clock.now()
    first = services.record_qualifying_event(user=friend, kind=KIND, amount=100, reference="loan:7", occurred_at=at)
    again = services.record_qualifying_event(user=friend, kind=KIND, amount=100, reference="loan:7", occurred_at=at)
    assert first.pk == again.pk
    with pytest.raises(services.ReferenceConflict):
        services.record_qualifying_event(user=friend, kind=KIND, amount=200, reference="loan:7", occurred_at=at)
    with pytest.raises(NotFound):
        services.reverse_qualifying_event(reference="loan:unknown")
    for bad in ({"amount": -1}, {"amount": 1.5}, {"kind": "Bad Kind"}, {"reference": "a b"},
                {"occurred_at": dt.datetime(2026, 1, 1)}):
        args = {"user": friend, "kind": KIND, "amount": 100, "reference": "loan:8", "occurred_at": at, **bad}
        with pytest.raises(DomainError):
            services.record_qualifying_event(**args)
    assert QualifyingEvent.objects.count() == 1


def test_run_due_jobs_command_settles_as_of_a_date(campaign, referrer):
    pledge(refer(referrer, campaign))
    at = (clock.now() + dt.timedelta(days=campaign.holding_days + 1)).isoformat()
    call_command("run_due_jobs", "--at", at)
    assert Reward.objects.get().status == Reward.Status.GRANTED


def test_doubling_card_doubles_one_chosen_day_from_the_budget(budget, referrer):
    campaign = make_campaign(awards_doubling_card=True)
    pledge(refer(referrer, campaign))
    after_holding(campaign)
    card = selectors.doubling_cards_of(referrer).get()
    tomorrow = clock.now().date() + dt.timedelta(days=1)
    with pytest.raises(services.DayInvalid):
        services.choose_doubling_day(user=referrer, card_id=card.pk, day=clock.now().date())
    with pytest.raises(NotFound):
        services.choose_doubling_day(user=new_user(), card_id=card.pk, day=tomorrow)
    services.choose_doubling_day(user=referrer, card_id=card.pk, day=tomorrow)
    assert selectors.yield_doubling_on(referrer, tomorrow) is True
    assert selectors.yield_doubling_on(referrer, tomorrow + dt.timedelta(days=1)) is False
    before = balance_of(referrer)
    paid = services.pay_doubling_day(user=referrer, scope="lending", day=tomorrow, interest=123, reference="int:1")
    assert paid == 123 and balance_of(referrer) == before + 123
    assert services.pay_doubling_day(user=referrer, scope="lending", day=tomorrow, interest=123,
                                     reference="int:1") == 123  # a replay
    assert services.pay_doubling_day(user=referrer, scope="lending", day=tomorrow, interest=99,
                                     reference="int:2") == 0  # once per card
    assert balance_of(referrer) == before + 123
    assert_ledger_ok()


def test_first_touch_wins_and_claims_close_after_the_window(campaign, referrer):
    other = new_user("Bob")
    friend = refer(referrer, campaign)
    share = services.create_share_code(user=other, campaign_id=campaign.pk, channel="moments")
    with pytest.raises(services.AlreadyAttributed):
        services.claim_referral(user=friend, code=share.code)
    assert Attribution.objects.get(referee=friend).referrer == referrer
    old = new_user()
    clock.advance(dt.timedelta(days=4))
    with pytest.raises(services.ClaimWindowClosed):
        services.claim_referral(user=old, code=share.code)
    with pytest.raises(services.ShareCodeInvalid):
        services.claim_referral(user=new_user(), code="NOPE2345")
