"""Wallet fixtures: users with wallets funded through the real ledger (external bank → wallet)."""

from __future__ import annotations

import itertools

import pytest

from backend.accounts.models import User
from backend.notifications.models import Notification
from backend.wallet import services
from backend.wallet.models import BankOperation, Hold, IdempotencyRecord, JournalEntry, LedgerAccount, Leg
from tests.conftest import befriend

_phones = itertools.count(1)


def new_user(display_name: str = "", **fields) -> User:
    n = next(_phones)
    return User.objects.create_user(f"+861370{n:07d}", display_name=display_name or f"User {n}", **fields)


def fund(account: LedgerAccount, amount: int) -> None:
    """Credit an account from the external bank, as a settled top-up would."""
    bank = services.system_account(LedgerAccount.Kind.EXTERNAL_BANK)
    services.transfer(source_id=bank.pk, destination_id=account.pk, amount=amount,
                      idempotency_key=f"test:fund:{account.pk}:{next(_phones)}", kind="top_up")


def snapshot() -> dict:
    """Everything a money operation could change. Equal snapshots mean nothing happened."""
    return {
        "accounts": list(LedgerAccount.objects.order_by("id").values_list("id", "balance", "held", "is_frozen")),
        "entries": JournalEntry.objects.count(),
        "legs": Leg.objects.count(),
        "holds": list(Hold.objects.order_by("id").values_list("id", "status", "posted_amount")),
        "idempotency": IdempotencyRecord.objects.count(),
        "bank_operations": list(BankOperation.objects.order_by("id").values_list("id", "status")),
        "notifications": Notification.objects.count(),
    }


@pytest.fixture
def alice() -> User:
    return new_user("Alice 爱丽丝")


@pytest.fixture
def bob(alice) -> User:
    bob = new_user("Bob 鲍勃")
    befriend(alice, bob)  # only people one may reach can be paid (core.reach)
    return bob


@pytest.fixture
def alice_wallet(alice) -> LedgerAccount:
    wallet = services.ensure_wallet(user_id=alice.pk)
    fund(wallet, 10_000)
    wallet.refresh_from_db()
    return wallet


@pytest.fixture
def bob_wallet(bob) -> LedgerAccount:
    return services.ensure_wallet(user_id=bob.pk)
