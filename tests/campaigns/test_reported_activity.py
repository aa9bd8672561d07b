"""Lower apps report activity to campaigns through core.activity_hooks (campaigns may not be imported by them):
a real sendMoney, accepted friend transfer, red packet or AA payment earns points by an active rule and a lottery draw chance, only
after its transaction commits; a replayed payment earns nothing twice; a failing listener never undoes money."""

from __future__ import annotations

import pytest

from backend.campaigns import services
from backend.campaigns.models import Activity, Campaign, DrawChance, PointsRule
from backend.chat import services as chat
from backend.core import activity_hooks
from backend.core.errors import DomainError
from backend.payments import services as payments
from backend.wallet import services as wallet
from backend.wallet.models import LedgerAccount
from tests.conftest import befriend, open_direct_between_friends

from .conftest import assert_ledgers_ok, make_campaign, new_user, wallet_balance

pytestmark = pytest.mark.django_db


def _fund(user, amount: int) -> None:
    bank = wallet.system_account(LedgerAccount.Kind.EXTERNAL_BANK)
    wallet.transfer(source_id=bank.pk, destination_id=wallet.ensure_wallet(user_id=user.pk).pk, amount=amount,
                    kind="top_up", idempotency_key=f"test:fund:{user.pk}")


@pytest.fixture
def friends(db):
    ada, bob = new_user("ada"), new_user("bob")
    ada.kyc_level = bob.kyc_level = 2
    ada.save()
    bob.save()
    _fund(ada, 100_000)
    befriend(ada, bob)
    return ada, bob


def _points(user) -> int:
    return services.points_account(user.pk).balance


def test_send_money_earns_points_and_a_draw_chance_once(friends, transfer_rule, django_capture_on_commit_callbacks):
    ada, bob = friends
    lottery = make_campaign(Campaign.Template.TRANSACTION_LOTTERY, trigger_kind="transfer",
                            trigger_min_amount=10_000, no_prize_weight=1)
    with django_capture_on_commit_callbacks(execute=True):
        movement = wallet.send_money(sender=ada, recipient_id=bob.pk, amount=20_000, idempotency_key="send-key-01")
    assert _points(ada) == 5 + 200  # fixed 5 + 1 per yuan
    assert _points(bob) == 0  # the payer earns, not the payee
    assert DrawChance.objects.filter(campaign=lottery, user=ada, used_at__isnull=True).count() == 1
    assert Activity.objects.get(user=ada).reference == f"wallet:entry:{movement.entry.pk}"
    # the phone retries the same payment: no new money, no new points, no new draw
    with django_capture_on_commit_callbacks(execute=True):
        replay = wallet.send_money(sender=ada, recipient_id=bob.pk, amount=20_000, idempotency_key="send-key-01")
    assert replay.replayed and replay.entry.pk == movement.entry.pk
    assert _points(ada) == 205 and DrawChance.objects.filter(user=ada).count() == 1
    # a duplicate delivery of the report itself (same reference) is ignored too
    services.on_reported_activity(activity_hooks.ReportedActivity(
        user_id=ada.pk, kind="transfer", amount=20_000, reference=f"wallet:entry:{movement.entry.pk}",
        occurred_at=movement.entry.created_at))
    assert _points(ada) == 205 and Activity.objects.count() == 1
    services.draw(user=ada, campaign_id=lottery.pk)
    assert_ledgers_ok()


def test_an_accepted_friend_transfer_earns_for_the_sender(friends, transfer_rule, django_capture_on_commit_callbacks):
    ada, bob = friends
    direct = open_direct_between_friends(ada, bob)
    with django_capture_on_commit_callbacks(execute=True):
        transfer = payments.send_transfer(sender=ada, conversation_id=direct.pk, amount=3_000,
                                          idempotency_key="transfer-01")[0]
    assert _points(ada) == 0  # held, not paid yet
    with django_capture_on_commit_callbacks(execute=True):
        payments.accept_transfer(user=bob, transfer_id=transfer.pk)
    assert _points(ada) == 5 + 30 and _points(bob) == 0
    assert_ledgers_ok()


def test_a_payment_that_rolls_back_reports_nothing(friends, transfer_rule, django_capture_on_commit_callbacks):
    ada, bob = friends
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(wallet.InsufficientFunds):
            wallet.send_money(sender=ada, recipient_id=bob.pk, amount=10_000_000, idempotency_key="send-key-02")
    assert callbacks == [] and Activity.objects.count() == 0 and _points(ada) == 0


def test_a_failing_listener_never_undoes_the_payment(friends, django_capture_on_commit_callbacks, monkeypatch):
    ada, bob = friends

    def broken(activity):
        raise RuntimeError("campaigns is down")

    monkeypatch.setattr(activity_hooks, "_listeners", [broken])
    with django_capture_on_commit_callbacks(execute=True):
        wallet.send_money(sender=ada, recipient_id=bob.pk, amount=1_000, idempotency_key="send-key-03")
    assert wallet_balance(bob) == 1_000 and wallet_balance(ada) == 99_000


def test_red_packets_and_aa_payments_earn_points_once(friends, django_capture_on_commit_callbacks):
    ada, bob = friends
    rules = [("red_packet", 7), ("aa_payment", 3)]
    for kind, points in rules:
        PointsRule.objects.create(activity_kind=kind, min_amount=1, fixed_points=points, points_per_yuan=0,
                                  valid_days=30)
    group = chat.create_group(owner=ada, title="饭局", member_ids=[bob.pk])
    with django_capture_on_commit_callbacks(execute=True):
        payments.send_red_packet(sender=ada, conversation_id=group.pk, kind="fixed", amount=200, count=1,
                                 idempotency_key="packet-activity-1")
        payments.send_red_packet(sender=ada, conversation_id=group.pk, kind="fixed", amount=200, count=1,
                                 idempotency_key="packet-activity-1")  # a replay earns nothing more
    assert _points(ada) == 7
    _fund(bob, 10_000)
    bill, _ = payments.create_bill(creator=ada, conversation_id=group.pk, title="火锅", amount=1_000, method="equal",
                                   participants=[ada.pk, bob.pk], idempotency_key="bill-activity-1")
    share = bill.shares.get(participant=bob)
    with django_capture_on_commit_callbacks(execute=True):
        payments.pay_share(user=bob, share_id=share.pk)
        payments.pay_share(user=bob, share_id=share.pk)  # a retry moves and earns nothing again
    assert _points(bob) == 3 and _points(ada) == 7
    assert sorted(Activity.objects.values_list("kind", flat=True)) == ["aa_payment", "red_packet"]
    assert_ledgers_ok()


def test_a_settle_up_payment_earns_points_once_for_the_payer(friends, django_capture_on_commit_callbacks):
    ada, bob = friends
    PointsRule.objects.create(activity_kind="aa_payment", min_amount=1, fixed_points=3, points_per_yuan=1,
                              valid_days=30)
    lottery = make_campaign(Campaign.Template.TRANSACTION_LOTTERY, trigger_kind="aa_payment", no_prize_weight=1)
    _fund(bob, 10_000)
    group = chat.create_group(owner=ada, title="周末AA", member_ids=[bob.pk])
    payments.create_bill(creator=ada, conversation_id=group.pk, title="烧烤", amount=4_000, method="equal",
                         participants=[ada.pk, bob.pk], idempotency_key="bill-settle-1")
    settlement = payments.start_settlement(user=ada, conversation_id=group.pk)
    with django_capture_on_commit_callbacks(execute=True):
        paid = payments.pay_settlement(user=bob, settlement_id=settlement.pk)
        with pytest.raises(DomainError):  # settled: a retry moves and earns nothing again
            payments.pay_settlement(user=bob, settlement_id=settlement.pk)
    assert _points(bob) == 3 + 20 and _points(ada) == 0  # bob paid his ¥20 half
    assert Activity.objects.get().reference == f"wallet:entry:{paid[0].entry_id}"
    assert DrawChance.objects.filter(campaign=lottery, user=bob).count() == 1
    assert wallet_balance(bob) == 10_000 - 2_000
    assert_ledgers_ok()
