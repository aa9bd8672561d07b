"""Campaign fixtures: a funded marketing budget, users with regions, campaigns and coupon types, all through
the real ledger and services."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from backend.accounts.models import User
from backend.advisors.models import CustomerRecord
from backend.campaigns import services
from backend.campaigns.models import Campaign, CouponType, PointsRule, Prize, UserRegion
from backend.campaigns.selectors import points_invariant_problems
from backend.core import clock
from backend.core.errors import DomainError
from backend.wallet import services as wallet
from backend.wallet.models import LedgerAccount
from backend.wallet.selectors import reconcile

_n = itertools.count(1)


def new_user(name: str = "", *, region: str = "", tier: str = "") -> User:
    """A customer; `region` is campaigns' UserRegion, `tier` the advisors app's customer tier (its
    CustomerRecord, which campaigns reads through core.customer_tiers); without one the tier is ordinary."""
    n = next(_n)
    user = User.objects.create_user(f"+86138{n:08d}", display_name=name or f"user{n}")
    if region:
        UserRegion.objects.create(user=user, region=region)
    if tier:
        set_tier(user, tier)
    return user


def set_tier(user: User, tier: str) -> None:
    """What advisors' nightly tier computation would store for the customer."""
    CustomerRecord.objects.update_or_create(customer=user, defaults={"tier": tier})


def fund_marketing(amount: int) -> LedgerAccount:
    budget = wallet.system_account(LedgerAccount.Kind.MARKETING_BUDGET)
    bank = wallet.system_account(LedgerAccount.Kind.EXTERNAL_BANK)
    wallet.transfer(source_id=bank.pk, destination_id=budget.pk, amount=amount, kind="top_up",
                    idempotency_key=f"test:marketing:{next(_n)}")
    return budget


def marketing_balance() -> int:
    return wallet.system_account(LedgerAccount.Kind.MARKETING_BUDGET).balance


def wallet_balance(user: User) -> int:
    account = wallet.ensure_wallet(user_id=user.pk)
    account.refresh_from_db()
    return account.balance


def assert_ledgers_ok() -> None:
    report = reconcile()
    assert report.ok, report.problems
    assert points_invariant_problems() == []


def make_campaign(template: str = Campaign.Template.POINTS_LOTTERY, **fields) -> Campaign:
    now = clock.now()
    defaults = {"name": "双十一抽奖", "template": template, "budget": 1_000_000,
                "starts_at": now - dt.timedelta(hours=1), "ends_at": now + dt.timedelta(days=7),
                "daily_draws_per_user": 100, "draw_cost_points": 10 if template == "points_lottery" else 0}
    defaults.update(fields)
    return Campaign.objects.create(**defaults)


def add_prize(campaign: Campaign, *, kind: str = Prize.Kind.POINTS, weight: int = 1, stock: int = 10,
              **fields) -> Prize:
    return Prize.objects.create(campaign=campaign, name=fields.pop("name", f"prize {next(_n)}"), kind=kind,
                                weight=weight, stock=stock, **fields)


def make_coupon_type(**fields) -> CouponType:
    now = clock.now()
    defaults = {"name": "满100返5", "kind": CouponType.Kind.CASH_BACK, "value": 500, "stock": 100,
                "valid_from": now - dt.timedelta(hours=1), "valid_until": now + dt.timedelta(days=30)}
    defaults.update(fields)
    return CouponType.objects.create(**defaults)


def give_points(user: User, points: int, *, valid_days: int = 365) -> None:
    services.earn_points(user_id=user.pk, points=points, reference=f"test:gift:{next(_n)}", memo="test",
                         valid_days=valid_days)


def activity(user: User, kind: str = "transfer", amount: int = 10_000, *, reference: str | None = None):
    return services.record_activity(user=user, kind=kind, amount=amount, reference=reference or f"t:{next(_n)}",
                                    occurred_at=clock.now())


def error_code(fn, **kwargs) -> str:
    """The code of the DomainError fn(**kwargs) raises (the test fails when it raises none)."""
    with pytest.raises(DomainError) as err:
        fn(**kwargs)
    return err.value.code


@pytest.fixture
def budget(db) -> LedgerAccount:
    return fund_marketing(100_000_000)


@pytest.fixture
def transfer_rule(db) -> PointsRule:
    return PointsRule.objects.create(activity_kind="transfer", min_amount=1_000, fixed_points=5, points_per_yuan=1,
                                     valid_days=30)
