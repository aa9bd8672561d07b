"""Referral fixtures: a funded marketing budget, a campaign, a referrer and new users, all through the real
ledger and services."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from backend.accounts.models import Device, User
from backend.core import clock
from backend.referrals import services
from backend.referrals.models import Campaign
from backend.wallet import services as wallet
from backend.wallet.models import LedgerAccount
from backend.wallet.selectors import reconcile

_n = itertools.count(1)
KIND = "lending_pledge_disbursed"


def new_user(name: str = "", **fields) -> User:
    n = next(_n)
    return User.objects.create_user(f"+86137{n:08d}", display_name=name or f"user{n}", **fields)


def fund_marketing(amount: int) -> LedgerAccount:
    budget = wallet.system_account(LedgerAccount.Kind.MARKETING_BUDGET)
    bank = wallet.system_account(LedgerAccount.Kind.EXTERNAL_BANK)
    wallet.transfer(source_id=bank.pk, destination_id=budget.pk, amount=amount, kind="top_up",
                    idempotency_key=f"test:marketing:{next(_n)}")
    return budget


def balance_of(user: User) -> int:
    account = wallet.ensure_wallet(user_id=user.pk)
    account.refresh_from_db()
    return account.balance


def marketing_balance() -> int:
    return wallet.system_account(LedgerAccount.Kind.MARKETING_BUDGET).balance


def assert_ledger_ok() -> None:
    report = reconcile()
    assert report.ok, report.problems


def make_campaign(**fields) -> Campaign:
    defaults = {"name": "任性理财", "budget": 10_000_000, "starts_at": clock.now() - dt.timedelta(days=1)}
    defaults.update(fields)
    return Campaign.objects.create(**defaults)


def refer(referrer: User, campaign: Campaign, *, channel: str = "chat", referee: User | None = None,
          device: str = "") -> User:
    """share → click → sign-up with the code; returns the referee."""
    share = services.create_share_code(user=referrer, campaign_id=campaign.pk, channel=channel)
    device = device or f"device-{next(_n):06d}"
    services.record_click(code=share.code, device_id=device, client_ip="127.0.0.1")
    referee = referee or new_user()
    services.claim_referral(user=referee, code=share.code, device_id=device)
    return referee


def pledge(user: User, amount: int = 100_000, *, reference: str | None = None, at: dt.datetime | None = None):
    return services.record_qualifying_event(user=user, kind=KIND, amount=amount,
                                            reference=reference or f"pledge:{next(_n)}", occurred_at=at or clock.now())


def after_holding(campaign: Campaign, days: int = 0) -> int:
    """Move the clock past the holding period and run the scan."""
    clock.advance(dt.timedelta(days=campaign.holding_days + days, minutes=1))
    return services.process_due_qualifications()


@pytest.fixture
def budget(db) -> LedgerAccount:
    return fund_marketing(100_000_000)


@pytest.fixture
def campaign(budget) -> Campaign:
    return make_campaign()


@pytest.fixture
def referrer(db) -> User:
    return new_user("Ada")


def add_device(user: User, installation_id: str) -> Device:
    return Device.objects.create(user=user, installation_id=installation_id)


def in_branch(user: User, branch: str) -> User:
    """Make the user a client manager of a branch the way the bank does: an advisors ManagerProfile (referrals
    reads the branch through core.staff_directory)."""
    from backend.advisors.models import ManagerProfile

    ManagerProfile.objects.create(user=user, branch=branch)
    return user


def open_welcome_packet(referee: User) -> int:
    """The referee opens their welcome red packet like any red packet (payments.grab_red_packet); returns the
    amount that reached their wallet."""
    from backend.payments import services as payments
    from backend.referrals.models import Reward

    reward = Reward.objects.get(referee=referee)
    return payments.grab_red_packet(user=referee, packet_id=reward.welcome_packet_id).amount
