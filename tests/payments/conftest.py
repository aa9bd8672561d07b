"""Payments fixtures: users with funded wallets (through the real ledger) in real chat conversations."""

from __future__ import annotations

import itertools

import pytest

from backend.accounts.models import User
from backend.chat import services as chat
from backend.notifications.models import Notification
from backend.payments.models import Bill, FriendTransfer, RedPacket, RedPacketGrab, Settlement, Share
from backend.wallet import services as wallet
from backend.wallet.models import Hold, IdempotencyRecord, JournalEntry, LedgerAccount, Leg
from backend.wallet.selectors import reconcile
from tests.conftest import befriend

_n = itertools.count(1)


def new_user(name: str = "", **fields) -> User:
    n = next(_n)
    return User.objects.create_user(f"+86136{n:08d}", display_name=name or f"user{n}", **fields)


def fund(user: User, amount: int) -> LedgerAccount:
    account = wallet.ensure_wallet(user_id=user.pk)
    bank = wallet.system_account(LedgerAccount.Kind.EXTERNAL_BANK)
    wallet.transfer(source_id=bank.pk, destination_id=account.pk, amount=amount, kind="top_up",
                    idempotency_key=f"test:fund:{account.pk}:{next(_n)}")
    return account


def balance(user: User) -> tuple[int, int]:
    """(balance, held) of the user's wallet; (0, 0) when they have none."""
    account = LedgerAccount.objects.filter(kind="user_wallet", owner=user).first()
    return (account.balance, account.held) if account else (0, 0)


def group_of(owner: User, *others: User, title: str = "饭局"):
    for other in others:  # only friends (or circle co-members) may be added to a group (core.reach)
        befriend(owner, other)
    return chat.create_group(owner=owner, title=title, member_ids=[u.pk for u in others])


def codes(fn, **kwargs) -> str:
    from backend.core.errors import DomainError

    with pytest.raises(DomainError) as err:
        fn(**kwargs)
    return err.value.code


def snapshot() -> dict:
    """Everything a money action could change. Equal snapshots mean nothing moved."""
    return {
        "accounts": list(LedgerAccount.objects.order_by("id").values_list("id", "balance", "held")),
        "entries": JournalEntry.objects.count(), "legs": Leg.objects.count(),
        "holds": list(Hold.objects.order_by("id").values_list("id", "status")),
        "idempotency": IdempotencyRecord.objects.count(),
        "packets": list(RedPacket.objects.order_by("id").values_list("id", "status", "grabbed_count")),
        "grabs": RedPacketGrab.objects.count(),
        "transfers": list(FriendTransfer.objects.order_by("id").values_list("id", "status")),
        "bills": list(Bill.objects.order_by("id").values_list("id", "status")),
        "shares": list(Share.objects.order_by("id").values_list("id", "status")),
        "settlements": list(Settlement.objects.order_by("id").values_list("id", "status")),
        "notifications": Notification.objects.filter(kind="money").count(),
    }


def assert_ledger_ok() -> None:
    report = reconcile()
    assert report.ok, report.problems


@pytest.fixture
def people(db):
    """Ada, Bob, Cyd and Dan, each with ¥100.00."""
    users = [new_user(name) for name in ("Ada", "Bob", "Cyd", "Dan")]
    for user in users:
        fund(user, 10_000)
    return users
