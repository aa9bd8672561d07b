"""The ledger's services: transfers, holds, idempotency, reversals, alerts, bad input, immutability."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction

from backend.notifications.models import Notification
from backend.wallet import services
from backend.wallet.models import Hold, ImmutableRow, JournalEntry, LedgerAccount, Leg
from backend.wallet.selectors import reconcile

from .conftest import fund, new_user, snapshot

pytestmark = pytest.mark.django_db


def balances(*accounts: LedgerAccount) -> list[tuple[int, int]]:
    return [LedgerAccount.objects.values_list("balance", "held").get(pk=a.pk) for a in accounts]


# --- transfers ------------------------------------------------------------------------------------


def test_transfer_moves_money_double_entry_and_alerts_both_users(alice, bob, alice_wallet, bob_wallet):
    movement = services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=2_550,
                                 idempotency_key="t1-abcdefgh", memo="午饭 lunch")
    assert balances(alice_wallet, bob_wallet) == [(7_450, 0), (2_550, 0)]
    legs = list(movement.entry.legs.order_by("id").values_list("account_id", "amount", "balance_after"))
    assert legs == [(alice_wallet.pk, -2_550, 7_450), (bob_wallet.pk, 2_550, 2_550)]

    bob_alert = Notification.objects.filter(recipient=bob, event="wallet.balance_changed").get()
    assert bob_alert.kind == "money" and bob_alert.title == "资金变动提醒"
    assert "收入 ¥25.50" in bob_alert.body and "Alice 爱丽丝" in bob_alert.body and "午饭 lunch" in bob_alert.body
    assert bob_alert.payload["entry_id"]
    from backend.core.ids import decode_id

    assert decode_id(bob_alert.payload["entry_id"], type_name="JournalEntry") == movement.entry.pk
    alice_alerts = Notification.objects.filter(recipient=alice, event="wallet.balance_changed").order_by("id")
    # funding alert, then the payment
    assert "支出 ¥25.50" in alice_alerts.last().body and "可用余额 ¥74.50" in alice_alerts.last().body
    assert reconcile().ok


def test_same_key_same_request_returns_the_first_result_and_moves_nothing_more(alice_wallet, bob_wallet):
    first = services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=100,
                              idempotency_key="same-key-1")
    before = snapshot()
    again = services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=100,
                              idempotency_key="same-key-1")
    assert again.replayed and again.entry.pk == first.entry.pk
    assert snapshot() == before


@pytest.mark.parametrize("change", [{"amount": 101}, {"memo": "other"}, {"to": "carol"}])
def test_same_key_different_request_is_an_idempotency_conflict(alice_wallet, bob_wallet, change):
    carol_wallet = services.ensure_wallet(user_id=new_user().pk)
    services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=100,
                      idempotency_key="same-key-2")
    before = snapshot()
    with pytest.raises(services.IdempotencyConflict) as err:
        services.transfer(
            source_id=alice_wallet.pk,
            destination_id=carol_wallet.pk if change.get("to") else bob_wallet.pk,
            amount=change.get("amount", 100), memo=change.get("memo", ""), idempotency_key="same-key-2",
        )
    assert err.value.code == "IDEMPOTENCY_CONFLICT"
    assert snapshot() == before


def test_a_failed_request_leaves_no_key_behind_so_it_can_be_retried(alice_wallet, bob_wallet):
    with pytest.raises(services.InsufficientFunds):
        services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=20_000,
                          idempotency_key="retry-me-1")
    fund(alice_wallet, 10_000)
    moved = services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=20_000,
                              idempotency_key="retry-me-1")
    assert not moved.replayed
    assert balances(alice_wallet, bob_wallet) == [(0, 0), (20_000, 0)]


def test_keys_are_scoped_to_the_paying_account(alice_wallet, bob_wallet):
    fund(bob_wallet, 500)
    services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=100, idempotency_key="k-shared")
    other = services.transfer(source_id=bob_wallet.pk, destination_id=alice_wallet.pk, amount=100,
                              idempotency_key="k-shared")
    assert not other.replayed


def test_marketing_budget_cannot_go_negative_but_the_external_bank_can(alice_wallet):
    marketing = services.system_account(LedgerAccount.Kind.MARKETING_BUDGET)
    with pytest.raises(services.InsufficientFunds):
        services.transfer(source_id=marketing.pk, destination_id=alice_wallet.pk, amount=1,
                          idempotency_key="reward:1", kind="referral_reward")
    bank = services.system_account(LedgerAccount.Kind.EXTERNAL_BANK)
    assert LedgerAccount.objects.get(pk=bank.pk).balance == -10_000  # it funded alice
    fund(marketing, 5_000)
    services.transfer(source_id=marketing.pk, destination_id=alice_wallet.pk, amount=5_000,
                      idempotency_key="reward:2", kind="referral_reward")
    assert balances(marketing) == [(0, 0)]


def test_the_database_refuses_an_overdraft_even_if_code_tried(alice_wallet):
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerAccount.objects.filter(pk=alice_wallet.pk).update(balance=-1)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerAccount.objects.filter(pk=alice_wallet.pk).update(held=10_001)


# --- bad input: a stable code, and nothing changes ------------------------------------------------


BAD_AMOUNTS = [
    (0, "AMOUNT_INVALID"), (-100, "AMOUNT_INVALID"), (12.5, "AMOUNT_INVALID"), (100.0, "AMOUNT_INVALID"),
    ("100", "AMOUNT_INVALID"), (True, "AMOUNT_INVALID"), (None, "AMOUNT_INVALID"),
    (10**30, "AMOUNT_TOO_LARGE"), (100_000_001, "AMOUNT_TOO_LARGE"),
]


@pytest.mark.parametrize(("amount", "code"), BAD_AMOUNTS)
def test_bad_amounts_are_refused_with_a_stable_code(alice, bob, alice_wallet, bob_wallet, amount, code):
    before = snapshot()
    for call in (
        lambda: services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=amount,
                                  idempotency_key="bad-amount-1"),
        lambda: services.send_money(sender=alice, recipient_id=bob.pk, amount=amount, idempotency_key="bad-amount-1"),
        lambda: services.place_hold(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=amount,
                                    idempotency_key="bad-amount-1"),
        lambda: services.withdraw(user=alice, amount=amount, idempotency_key="bad-amount-1"),
        lambda: services.top_up(user=alice, amount=amount, idempotency_key="bad-amount-1"),
    ):
        with pytest.raises(services.DomainError) as err:
            call()
        assert err.value.code == code
        assert err.value.field == "amount"
    assert snapshot() == before


def test_self_transfer_is_refused(alice, alice_wallet):
    before = snapshot()
    with pytest.raises(services.SelfTransfer) as err:
        services.send_money(sender=alice, recipient_id=alice.pk, amount=100, idempotency_key="self-pay-1")
    assert err.value.code == "SELF_TRANSFER"
    with pytest.raises(services.SelfTransfer):
        services.transfer(source_id=alice_wallet.pk, destination_id=alice_wallet.pk, amount=100,
                          idempotency_key="self-pay-2")
    assert snapshot() == before


def test_unknown_or_disabled_recipient_and_unknown_account_are_not_found(alice, alice_wallet):
    disabled = new_user("Gone", is_active=False)
    before = snapshot()
    for recipient_id in (999_999, disabled.pk):
        with pytest.raises(services.NotFound) as err:
            services.send_money(sender=alice, recipient_id=recipient_id, amount=100, idempotency_key="unknown-1")
        assert err.value.code == "NOT_FOUND" and err.value.field == "recipientId"
    with pytest.raises(services.NotFound):
        services.transfer(source_id=alice_wallet.pk, destination_id=999_999, amount=100, idempotency_key="unknown-2")
    assert snapshot() == before


def test_frozen_accounts_neither_send_nor_receive(alice, bob, alice_wallet, bob_wallet):
    services.set_frozen(account_id=bob_wallet.pk, frozen=True, reason="fraud report")
    before = snapshot()
    with pytest.raises(services.PaymentDeclined) as err:  # the payer is not told why (a frozen payee)
        services.send_money(sender=alice, recipient_id=bob.pk, amount=100, idempotency_key="to-frozen-1")
    assert err.value.code == "PAYMENT_DECLINED" and "frozen" not in err.value.message.lower()
    assert snapshot() == before
    services.set_frozen(account_id=bob_wallet.pk, frozen=False)
    services.set_frozen(account_id=alice_wallet.pk, frozen=True)
    before = snapshot()
    for call in (
        lambda: services.send_money(sender=alice, recipient_id=bob.pk, amount=100, idempotency_key="from-frozen"),
        lambda: services.place_hold(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=100,
                                    idempotency_key="from-frozen"),
        lambda: services.withdraw(user=alice, amount=100, idempotency_key="from-frozen"),
    ):
        with pytest.raises(services.AccountFrozen):
            call()
    assert snapshot() == before


def test_insufficient_funds_counts_pending_holds(alice, bob, alice_wallet, bob_wallet):
    services.place_hold(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=9_000,
                        idempotency_key="test:hold-big")
    before = snapshot()
    with pytest.raises(services.InsufficientFunds) as err:
        services.send_money(sender=alice, recipient_id=bob.pk, amount=1_001, idempotency_key="too-much-1")
    assert err.value.code == "INSUFFICIENT_FUNDS"
    assert snapshot() == before
    services.send_money(sender=alice, recipient_id=bob.pk, amount=1_000, idempotency_key="just-enough")
    assert balances(alice_wallet) == [(9_000, 9_000)]


@pytest.mark.parametrize("key", ["", "short", "x" * 65, "has space!", "colon:key1", 12345678, None])
def test_bad_idempotency_keys_from_phones_are_refused(alice, bob, key):
    before = snapshot()
    with pytest.raises(services.IdempotencyKeyInvalid) as err:
        services.send_money(sender=alice, recipient_id=bob.pk, amount=100, idempotency_key=key)
    assert err.value.code == "IDEMPOTENCY_KEY_INVALID"
    assert snapshot() == before


def test_memo_too_long_is_refused(alice, bob, alice_wallet):
    with pytest.raises(services.MemoTooLong):
        services.send_money(sender=alice, recipient_id=bob.pk, amount=100, idempotency_key="memo-long", memo="字" * 141)


# --- holds ----------------------------------------------------------------------------------------


def test_hold_reserves_then_posts_in_full(alice, bob, alice_wallet, bob_wallet):
    hold = services.place_hold(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=3_000,
                               idempotency_key="test:h1", memo="AA 聚餐").hold
    assert balances(alice_wallet, bob_wallet) == [(10_000, 3_000), (0, 0)]
    assert not Notification.objects.filter(recipient=bob, event__startswith="wallet.").exists()  # nothing moved yet
    posted = services.post_hold(hold_id=hold.pk, idempotency_key="test:h1-post")
    assert balances(alice_wallet, bob_wallet) == [(7_000, 0), (3_000, 0)]
    assert posted.entry.hold_id == hold.pk and posted.entry.kind == "hold_post"
    hold.refresh_from_db()
    assert (hold.status, hold.posted_amount) == ("posted", 3_000)
    assert Notification.objects.filter(recipient=bob, event="wallet.balance_changed").count() == 1
    assert reconcile().ok


def test_partial_post_releases_the_rest(alice_wallet, bob_wallet):
    hold = services.place_hold(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=3_000,
                               idempotency_key="test:h2").hold
    services.post_hold(hold_id=hold.pk, idempotency_key="test:h2-post", amount=1_200)
    assert balances(alice_wallet, bob_wallet) == [(8_800, 0), (1_200, 0)]
    with pytest.raises(services.AmountExceedsHold):
        other = services.place_hold(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=100,
                                    idempotency_key="test:h3").hold
        services.post_hold(hold_id=other.pk, idempotency_key="test:h3-post", amount=101)


def test_void_releases_everything_and_moves_nothing(alice_wallet, bob_wallet):
    hold = services.place_hold(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=3_000,
                               idempotency_key="test:h4").hold
    entries = JournalEntry.objects.count()
    services.void_hold(hold_id=hold.pk, idempotency_key="test:h4-void")
    assert balances(alice_wallet, bob_wallet) == [(10_000, 0), (0, 0)]
    assert JournalEntry.objects.count() == entries
    hold.refresh_from_db()
    assert hold.status == "voided"


def test_a_hold_resolves_at_most_once(alice_wallet, bob_wallet):
    hold = services.place_hold(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=3_000,
                               idempotency_key="test:h5").hold
    first = services.post_hold(hold_id=hold.pk, idempotency_key="test:h5-post")
    before = snapshot()
    # A retry with the same key is the first result; any other attempt is HOLD_NOT_PENDING.
    assert services.post_hold(hold_id=hold.pk, idempotency_key="test:h5-post").entry.pk == first.entry.pk
    for call in (lambda: services.post_hold(hold_id=hold.pk, idempotency_key="test:h5-post-again"),
                 lambda: services.void_hold(hold_id=hold.pk, idempotency_key="test:h5-void")):
        with pytest.raises(services.HoldNotPending) as err:
            call()
        assert err.value.code == "HOLD_NOT_PENDING"
    with pytest.raises(services.IdempotencyConflict):
        services.void_hold(hold_id=hold.pk, idempotency_key="test:h5-post")
    assert snapshot() == before


def test_expired_holds_are_voided_by_the_sweep(alice_wallet, bob_wallet):
    import datetime as dt

    from backend.core import clock
    from backend.wallet.tasks import void_expired_holds

    expires = clock.now() + dt.timedelta(hours=24)
    hold = services.place_hold(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=500,
                               idempotency_key="redpacket:1", kind="red_packet", expires_at=expires).hold
    assert void_expired_holds() == 0
    clock.advance(dt.timedelta(hours=24, seconds=1))
    assert void_expired_holds() == 1
    hold.refresh_from_db()
    assert hold.status == "voided"
    assert balances(alice_wallet) == [(10_000, 0)]


# --- reversals and immutability -----------------------------------------------------------------


def test_reverse_entry_posts_a_mirror_and_only_once(alice, bob, alice_wallet, bob_wallet):
    original = services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=700,
                                 idempotency_key="to-reverse").entry
    reversal = services.reverse_entry(entry_id=original.pk, idempotency_key="ops:rev:1").entry
    assert reversal.reverses_id == original.pk and reversal.kind == "reversal"
    assert balances(alice_wallet, bob_wallet) == [(10_000, 0), (0, 0)]
    assert Leg.objects.filter(entry=original).count() == 2  # the original is untouched
    with pytest.raises(services.EntryAlreadyReversed):
        services.reverse_entry(entry_id=original.pk, idempotency_key="ops:rev:2")
    assert services.reverse_entry(entry_id=original.pk, idempotency_key="ops:rev:1").replayed


def test_a_reversal_cannot_overdraw_the_recipient(alice, bob, alice_wallet, bob_wallet):
    original = services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=700,
                                 idempotency_key="test:spent-1").entry
    carol_wallet = services.ensure_wallet(user_id=new_user().pk)
    services.transfer(source_id=bob_wallet.pk, destination_id=carol_wallet.pk, amount=500, idempotency_key="test:spent-2")
    before = snapshot()
    with pytest.raises(services.InsufficientFunds):
        services.reverse_entry(entry_id=original.pk, idempotency_key="ops:rev:3")
    assert snapshot() == before


def test_entries_and_legs_refuse_changes_in_code(alice_wallet, bob_wallet):
    entry = services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=1,
                              idempotency_key="immutable-1").entry
    entry.memo = "edited"
    with pytest.raises(ImmutableRow):
        entry.save()
    with pytest.raises(ImmutableRow):
        entry.delete()
    leg = entry.legs.first()
    with pytest.raises(ImmutableRow):
        leg.save()


def test_postgres_refuses_updates_and_deletes_of_entries(require_postgres, alice_wallet, bob_wallet):
    entry = services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=1,
                              idempotency_key="immutable-2").entry
    for sql in ("UPDATE wallet_leg SET amount = amount * 2 WHERE entry_id = %s",
                "DELETE FROM wallet_leg WHERE entry_id = %s",
                "UPDATE wallet_journalentry SET memo = 'x' WHERE id = %s"):
        with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [entry.pk])


@pytest.mark.django_db(transaction=True)
def test_postgres_refuses_to_commit_an_unbalanced_entry(require_postgres, alice_wallet, bob_wallet):
    before = snapshot()
    with pytest.raises(IntegrityError, match="unbalanced"), transaction.atomic():
        entry = JournalEntry.objects.create(kind="transfer")
        Leg.objects.create(entry=entry, account=alice_wallet, amount=-100, balance_after=9_900)
        Leg.objects.create(entry=entry, account=bob_wallet, amount=99, balance_after=99)
    with pytest.raises(IntegrityError, match="unbalanced"), transaction.atomic():
        JournalEntry.objects.create(kind="transfer")  # no legs at all
    assert snapshot() == before


# --- reconciliation -------------------------------------------------------------------------------


def test_reconcile_command_passes_on_a_healthy_ledger(alice_wallet, bob_wallet, capsys):
    services.transfer(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=10, idempotency_key="test:rec-1")
    services.place_hold(source_id=alice_wallet.pk, destination_id=bob_wallet.pk, amount=10, idempotency_key="test:rec-2")
    call_command("reconcile_ledger")
    out = capsys.readouterr().out
    assert "no mismatches" in out and "ledger total:     0 fen" in out
    assert "system account external_bank: -10000 fen" in out  # alice's funding, summed over the bank's shards


def test_reconcile_command_reports_a_drifted_cached_balance(alice_wallet, capsys):
    LedgerAccount.objects.filter(pk=alice_wallet.pk).update(balance=10_500)
    with pytest.raises(CommandError):
        call_command("reconcile_ledger")
    out = capsys.readouterr().out
    assert f"account #{alice_wallet.pk}" in out and "!= sum of legs 10000" in out
    assert "the ledger sums to 0" not in out


def test_reconcile_reports_a_held_mismatch_and_an_unbalanced_entry(alice_wallet, bob_wallet):
    LedgerAccount.objects.filter(pk=alice_wallet.pk).update(held=5)
    report = reconcile()
    assert any("cached held 5 != pending holds 0" in p for p in report.problems)
    if connection.vendor != "postgresql":  # PostgreSQL refuses this at commit (tested above)
        entry = JournalEntry.objects.create(kind="transfer")
        Leg.objects.create(entry=entry, account=bob_wallet, amount=3, balance_after=3)
        report = reconcile()
        assert any(f"entry #{entry.pk}: 1 legs summing to 3" in p for p in report.problems)
        assert any("the ledger sums to 3" in p for p in report.problems)


def test_hold_row_constraints_hold_in_the_database(alice_wallet, bob_wallet):
    with pytest.raises(IntegrityError), transaction.atomic():
        Hold.objects.create(source=alice_wallet, destination=bob_wallet, amount=10, status="posted")
    with pytest.raises(IntegrityError), transaction.atomic():
        Hold.objects.create(source=alice_wallet, destination=alice_wallet, amount=10)
