"""A process that dies between committing a bank operation and calling the bank: the recheck and a client
retry must neither take "never received" for success nor pay twice, and the ledger must reconcile.

The crash is simulated by making the sandbox gateway's call raise before it reaches the (sandbox) bank, the
same point a killed process would stop at. The sandbox bank remembers what it received in a table.
"""

from __future__ import annotations

import datetime as dt

import pytest

from backend.core import clock
from backend.notifications.models import Notification
from backend.wallet import services
from backend.wallet.gateway import GatewayUnavailable, SandboxBankGateway
from backend.wallet.models import BankOperation, LedgerAccount, SandboxBankRecord
from backend.wallet.selectors import reconcile, system_balance

from .conftest import fund, snapshot

pytestmark = pytest.mark.django_db


class ProcessDied(BaseException):
    """Stands for the process being killed: nothing in the service may catch it."""


def die_before_the_bank(monkeypatch, method: str) -> None:
    def crash(self, **kwargs):
        raise ProcessDied

    monkeypatch.setattr(SandboxBankGateway, method, crash)


def die_after_the_bank(monkeypatch, method: str) -> None:
    """The bank executes the request, then we die before reading the answer."""
    real = getattr(SandboxBankGateway, method)

    def executed_then_crash(self, **kwargs):
        real(self, **kwargs)
        raise ProcessDied

    monkeypatch.setattr(SandboxBankGateway, method, executed_then_crash)


def crashed(call, **kwargs) -> None:
    with pytest.raises(ProcessDied):
        call(**kwargs)


def wallet_figures(account: LedgerAccount) -> tuple[int, int]:
    account.refresh_from_db()
    return account.balance, account.held


def paid_out() -> list[tuple[str, int]]:
    return list(SandboxBankRecord.objects.filter(operation="payout").values_list("reference", "amount"))


@pytest.fixture
def funded(alice, alice_wallet) -> LedgerAccount:
    return alice_wallet  # 10,000 fen


def test_withdrawal_crash_before_the_payout_is_resent_once_while_young(alice, funded, monkeypatch):
    die_before_the_bank(monkeypatch, "payout")
    crashed(services.withdraw, user=alice, amount=3_000, idempotency_key="withdraw-crash-1")
    monkeypatch.undo()  # the process restarts
    operation = BankOperation.objects.get()
    assert operation.status == "pending" and wallet_figures(funded) == (10_000, 3_000)
    assert paid_out() == []  # the bank never heard of it

    assert services.recheck_pending_bank_operations() == 0  # too early: GATEWAY_RECHECK_AFTER_SECONDS
    clock.advance(dt.timedelta(seconds=61))
    assert services.recheck_pending_bank_operations() == 1  # unknown to the bank → resent, same reference
    operation.refresh_from_db()
    assert operation.status == "succeeded" and operation.hold.status == "posted"
    assert paid_out() == [(str(operation.reference), 3_000)]
    assert wallet_figures(funded) == (7_000, 0)

    # Later retries (the task again, the phone's retry) settle nothing twice and pay nothing twice.
    assert services.recheck_pending_bank_operations() == 0
    again = services.withdraw(user=alice, amount=3_000, idempotency_key="withdraw-crash-1")
    assert again.replayed and again.operation.status == "succeeded"
    assert paid_out() == [(str(operation.reference), 3_000)]
    assert wallet_figures(funded) == (7_000, 0)
    assert system_balance(LedgerAccount.Kind.EXTERNAL_BANK) == -7_000  # over its shards
    assert reconcile().ok


def test_withdrawal_crash_before_the_payout_is_voided_when_old(alice, funded, monkeypatch):
    die_before_the_bank(monkeypatch, "payout")
    crashed(services.withdraw, user=alice, amount=3_000, idempotency_key="withdraw-crash-2")
    monkeypatch.undo()
    clock.advance(dt.timedelta(minutes=16))  # past GATEWAY_RESEND_WITHIN_SECONDS (15 min)
    assert services.recheck_pending_bank_operations() == 1
    operation = BankOperation.objects.get()
    assert (operation.status, operation.failure_code) == ("failed", "BANK_NEVER_RECEIVED")
    assert operation.hold.status == "voided" and operation.entry is None
    assert wallet_figures(funded) == (10_000, 0)
    assert paid_out() == []
    assert Notification.objects.filter(recipient=alice, event="wallet.bank_operation_failed").count() == 1
    # The phone retries with the same key: the answer stays "failed"; nothing is sent to the bank.
    again = services.withdraw(user=alice, amount=3_000, idempotency_key="withdraw-crash-2")
    assert again.replayed and again.operation.status == "failed"
    assert paid_out() == [] and wallet_figures(funded) == (10_000, 0)
    assert reconcile().ok


def test_a_phone_retry_after_the_crash_resends_the_payout(alice, funded, monkeypatch):
    die_before_the_bank(monkeypatch, "payout")
    crashed(services.withdraw, user=alice, amount=1_200, idempotency_key="withdraw-crash-3")
    monkeypatch.undo()
    retry = services.withdraw(user=alice, amount=1_200, idempotency_key="withdraw-crash-3")
    assert retry.replayed and retry.operation.status == "succeeded"
    assert paid_out() == [(str(retry.operation.reference), 1_200)]
    assert wallet_figures(funded) == (8_800, 0)
    assert reconcile().ok


def test_a_payout_the_bank_executed_before_the_crash_is_posted_not_paid_again(alice, funded, monkeypatch):
    die_after_the_bank(monkeypatch, "payout")
    crashed(services.withdraw, user=alice, amount=2_500, idempotency_key="withdraw-crash-4")
    monkeypatch.undo()
    clock.advance(dt.timedelta(minutes=30))  # even when old: the bank has it, so it is a success
    assert services.recheck_pending_bank_operations() == 1
    operation = BankOperation.objects.get()
    assert operation.status == "succeeded" and wallet_figures(funded) == (7_500, 0)
    record = SandboxBankRecord.objects.get()
    assert (record.amount, record.times_received) == (2_500, 1)
    assert reconcile().ok


def test_a_resent_payout_the_bank_already_has_is_deduplicated(alice, funded, monkeypatch):
    """The first payout was slow (it reached the bank after our status query said unknown): the resend
    with the same reference is deduplicated by the bank, and the hold is posted once."""
    die_before_the_bank(monkeypatch, "payout")
    crashed(services.withdraw, user=alice, amount=4_000, idempotency_key="withdraw-crash-5")
    monkeypatch.undo()
    operation = BankOperation.objects.get()
    real_status = SandboxBankGateway.status

    def unknown_then_the_slow_request_lands(self, **kwargs):
        try:
            return real_status(self, **kwargs)
        finally:
            SandboxBankGateway().payout(reference=str(operation.reference), amount=4_000)

    monkeypatch.setattr(SandboxBankGateway, "status", unknown_then_the_slow_request_lands)
    clock.advance(dt.timedelta(seconds=61))
    assert services.recheck_pending_bank_operations() == 1
    monkeypatch.undo()
    record = SandboxBankRecord.objects.get()
    assert (record.amount, record.times_received) == (4_000, 2)  # received twice, executed once
    assert wallet_figures(funded) == (6_000, 0)
    assert reconcile().ok


def test_no_void_while_a_resend_may_still_be_in_flight(alice, funded, monkeypatch):
    """A resend claimed just before the window closed may still land: the void waits for the next recheck."""
    die_before_the_bank(monkeypatch, "payout")
    crashed(services.withdraw, user=alice, amount=1_000, idempotency_key="withdraw-crash-6")
    operation = BankOperation.objects.get()
    clock.advance(dt.timedelta(minutes=14, seconds=59))
    crashed(services.recheck_pending_bank_operations)  # dies again, after claiming the resend
    monkeypatch.undo()
    clock.advance(dt.timedelta(seconds=30))  # past the window, but the resend is 30 s old
    assert services.recheck_pending_bank_operations() == 0
    assert BankOperation.objects.get(pk=operation.pk).status == "pending"
    assert wallet_figures(funded) == (10_000, 1_000)
    clock.advance(dt.timedelta(seconds=31))  # the resend can no longer land: now it is safe to void
    assert services.recheck_pending_bank_operations() == 1
    assert BankOperation.objects.get(pk=operation.pk).failure_code == "BANK_NEVER_RECEIVED"
    assert wallet_figures(funded) == (10_000, 0) and paid_out() == []
    assert reconcile().ok


def test_top_up_crash_before_the_collect_is_resent_while_young(alice, monkeypatch):
    wallet = services.ensure_wallet(user_id=alice.pk)
    die_before_the_bank(monkeypatch, "collect")
    crashed(services.top_up, user=alice, amount=5_000, idempotency_key="topup-crash-1")
    monkeypatch.undo()
    assert wallet_figures(wallet) == (0, 0) and not SandboxBankRecord.objects.exists()
    clock.advance(dt.timedelta(seconds=61))
    assert services.recheck_pending_bank_operations() == 1
    assert BankOperation.objects.get().status == "succeeded"
    assert wallet_figures(wallet) == (5_000, 0)
    assert services.recheck_pending_bank_operations() == 0
    again = services.top_up(user=alice, amount=5_000, idempotency_key="topup-crash-1")
    assert again.replayed and wallet_figures(wallet) == (5_000, 0)
    assert SandboxBankRecord.objects.get().amount == 5_000  # collected once
    assert reconcile().ok


def test_top_up_crash_before_the_collect_fails_when_old(alice, monkeypatch):
    wallet = services.ensure_wallet(user_id=alice.pk)
    die_before_the_bank(monkeypatch, "collect")
    crashed(services.top_up, user=alice, amount=5_000, idempotency_key="topup-crash-2")
    monkeypatch.undo()
    clock.advance(dt.timedelta(hours=1))
    assert services.recheck_pending_bank_operations() == 1
    operation = BankOperation.objects.get()
    assert (operation.status, operation.failure_code) == ("failed", "BANK_NEVER_RECEIVED")
    assert wallet_figures(wallet) == (0, 0) and not SandboxBankRecord.objects.exists()
    assert reconcile().ok


def test_an_unanswered_recheck_leaves_the_operation_pending(alice, funded, monkeypatch):
    die_before_the_bank(monkeypatch, "payout")
    crashed(services.withdraw, user=alice, amount=700, idempotency_key="withdraw-crash-7")
    monkeypatch.undo()

    def unavailable(self, **kwargs):
        raise GatewayUnavailable("down")

    monkeypatch.setattr(SandboxBankGateway, "status", unavailable)
    clock.advance(dt.timedelta(hours=2))
    before = snapshot()
    assert services.recheck_pending_bank_operations() == 0
    assert snapshot() == before and wallet_figures(funded) == (10_000, 700)


def test_the_sandbox_refuses_a_reference_reused_for_another_amount(alice, funded):
    gateway = SandboxBankGateway()
    assert gateway.payout(reference="ref-1", amount=100).succeeded
    reused = gateway.payout(reference="ref-1", amount=999)
    assert (reused.succeeded, reused.failure_code) == (False, "SANDBOX_REFERENCE_REUSED")
    assert paid_out() == [("ref-1", 100)]


def test_fund_helper_still_works_without_the_gateway(alice_wallet):
    fund(alice_wallet, 1)  # ledger-only funding never touches the sandbox bank
    assert not SandboxBankRecord.objects.exists()
