"""Loans fixtures: verified borrowers, funded lenders and a circle they share, through the real services."""

from __future__ import annotations

import itertools

import pytest

from backend.accounts.models import User
from backend.circles import services as circles
from backend.core.errors import DomainError
from backend.loans import services
from backend.wallet import services as wallet
from backend.wallet.models import Hold, JournalEntry, LedgerAccount, Leg
from backend.wallet.selectors import reconcile

_n = itertools.count(1)
YUAN = 100


def new_user(name: str = "", kyc: int = 2) -> User:
    n = next(_n)
    return User.objects.create_user(f"+86137{n:08d}", display_name=name or f"用户{n}", kyc_level=kyc)


def fund(user: User, amount: int) -> LedgerAccount:
    account = wallet.ensure_wallet(user_id=user.pk)
    bank = wallet.system_account(LedgerAccount.Kind.EXTERNAL_BANK)
    wallet.transfer(source_id=bank.pk, destination_id=account.pk, amount=amount, kind="top_up",
                    idempotency_key=f"test:fund:{account.pk}:{next(_n)}")
    return account


def fund_marketing(amount: int) -> None:
    budget = wallet.system_account(LedgerAccount.Kind.MARKETING_BUDGET)
    bank = wallet.system_account(LedgerAccount.Kind.EXTERNAL_BANK)
    wallet.transfer(source_id=bank.pk, destination_id=budget.pk, amount=amount, kind="top_up",
                    idempotency_key=f"test:budget:{next(_n)}")


def available(user: User) -> int:
    account = LedgerAccount.objects.filter(kind="user_wallet", owner=user).first()
    return account.balance - account.held if account else 0


def circle_with(owner: User, *members: User, name: str = "校友圈"):
    circle = circles.create_circle(owner=owner, kind="alumni", name=name)
    for member in members:
        circles.join_circle(user=member, circle_id=circle.pk)
    return circle


def codes(fn, **kwargs) -> str:
    with pytest.raises(DomainError) as err:
        fn(**kwargs)
    return err.value.code


def snapshot() -> dict:
    return {
        "accounts": list(LedgerAccount.objects.order_by("id").values_list("id", "balance", "held")),
        "entries": JournalEntry.objects.count(), "legs": Leg.objects.count(),
        "holds": list(Hold.objects.order_by("id").values_list("id", "status")),
    }


def assert_ledger_ok() -> None:
    report = reconcile()
    assert report.ok, report.problems
    assert report.ledger_total == 0


def request(borrower: User, circle, **overrides):
    fields = {"amount": 3_000 * YUAN, "term_months": 12, "rate_bp": 1000, "method": "equal_instalment",
              "purpose": "装修", "circle_ids": [circle.pk], "funding_days": 7}
    fields.update(overrides)
    return services.create_loan_request(borrower=borrower, **fields)


@pytest.fixture
def people(db):
    """A borrower, three funded lenders and an outsider, the first four in one circle."""
    borrower, a, b, c, outsider = (new_user(n) for n in ("张借款", "李甲", "王乙", "赵丙", "外人"))
    for lender in (a, b, c, outsider):
        fund(lender, 10_000 * YUAN)
    circle = circle_with(borrower, a, b, c)
    return {"borrower": borrower, "lenders": [a, b, c], "outsider": outsider, "circle": circle}
