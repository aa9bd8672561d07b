"""Advisors test helpers: customers, client managers with profiles, service accounts."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest

from backend.accounts.models import User
from backend.advisors import services
from backend.advisors.models import ManagerProfile, Product
from tests.notifications.conftest import eager_tasks  # noqa: F401  (autouse: broadcast delivery runs in-process)

_phones = itertools.count(1)


def new_user(name: str = "", **fields) -> User:
    n = next(_phones)
    return User.objects.create_user(f"+86137{n:08d}", display_name=name or f"user{n}", **fields)


def new_manager(name: str, *, branch: str = "Haidian", capacity: int = 100, always_open: bool = True,
                **profile) -> User:
    manager = new_user(name, role=User.Role.CLIENT_MANAGER)
    if always_open:
        profile.setdefault("office_days", list(range(7)))
        profile.setdefault("office_opens", dt.time(0, 0))
        profile.setdefault("office_closes", dt.time(23, 59, 59))
    ManagerProfile.objects.create(user=manager, branch=branch, capacity=capacity, **profile)
    return manager


def nodes_of(connection: dict) -> list[dict]:
    return [edge["node"] for edge in connection["edges"]]


def assign(customer: User, manager: User):
    return services.assign_customer(customer_id=customer.pk, manager_id=manager.pk, method="admin")


@pytest.fixture(autouse=True)
def _everyone_may_chat(monkeypatch):
    """The circles app's contact policy (friends only) is not what these tests are about."""
    from backend.core import reach

    monkeypatch.setattr(reach, "_contact_policies", [])
    monkeypatch.setattr(reach, "_block_lookups", [])


@pytest.fixture
def product(db) -> Product:
    return Product.objects.create(name="稳健理财 90天", kind="wealth", risk_level=2, expected_yield_bps=310,
                                  min_amount=100_000, detail_url="https://bank.example/p/90")
