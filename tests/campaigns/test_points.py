"""The points ledger: earned by rules on reported activities (idempotent on reference), spent, expired by the
scan, reversed — and every balance equals the sum of its entries."""

from __future__ import annotations

import datetime as dt

import pytest

from backend.campaigns import selectors, services
from backend.campaigns.models import PointsEntry
from backend.core import clock
from backend.core.errors import DomainError

from .conftest import activity, assert_ledgers_ok, give_points, new_user

pytestmark = pytest.mark.django_db


def test_a_transfer_earns_points_by_the_rule_once_per_reference(transfer_rule):
    ada = new_user("Ada")
    first = activity(ada, amount=12_345, reference="transfer:1")
    again = activity(ada, amount=12_345, reference="transfer:1")
    assert first.pk == again.pk
    assert first.points == 5 + 123
    assert selectors.points_balance(ada) == 128
    assert PointsEntry.objects.filter(kind="earn").count() == 1
    assert_ledgers_ok()


def test_small_or_unruled_activities_earn_nothing(transfer_rule):
    ada = new_user()
    assert activity(ada, amount=999).points == 0
    assert activity(ada, kind="instalment_repaid", amount=100_000).points == 0
    assert selectors.points_balance(ada) == 0


def test_a_reused_reference_with_other_details_is_a_conflict(transfer_rule):
    ada, bob = new_user(), new_user()
    activity(ada, amount=5_000, reference="r1")
    for user, amount in ((ada, 6_000), (bob, 5_000)):
        with pytest.raises(DomainError) as err:
            activity(user, amount=amount, reference="r1")
        assert err.value.code == "REFERENCE_CONFLICT"
    assert selectors.points_balance(bob) == 0


@pytest.mark.parametrize("kwargs,code", [
    ({"kind": "Bad Kind"}, "KIND_INVALID"), ({"amount": -1}, "AMOUNT_INVALID"), ({"amount": "5"}, "AMOUNT_INVALID"),
    ({"reference": "has space"}, "REFERENCE_INVALID"), ({"occurred_at": dt.datetime(2026, 1, 1)}, "OCCURRED_AT_INVALID"),
])
def test_bad_reports_are_refused_and_change_nothing(transfer_rule, kwargs, code):
    ada = new_user()
    call = {"user": ada, "kind": "transfer", "amount": 5_000, "reference": "ok:1", "occurred_at": clock.now(), **kwargs}
    with pytest.raises(DomainError) as err:
        services.record_activity(**call)
    assert err.value.code == code
    assert selectors.points_balance(ada) == 0


def test_spending_more_than_the_balance_is_refused(db):
    ada = new_user()
    give_points(ada, 5)
    with pytest.raises(DomainError) as err:
        services.spend_points(user_id=ada.pk, points=6, reference="spend:1", memo="")
    assert err.value.code == "INSUFFICIENT_POINTS"
    assert selectors.points_balance(ada) == 5
    services.spend_points(user_id=ada.pk, points=5, reference="spend:2", memo="")
    assert selectors.points_balance(ada) == 0
    assert_ledgers_ok()


def test_points_expire_after_their_lot_and_spending_uses_the_soonest_first(db):
    ada = new_user()
    give_points(ada, 100, valid_days=10)
    give_points(ada, 50, valid_days=40)
    services.spend_points(user_id=ada.pk, points=30, reference="spend:x", memo="")  # from the 10-day lot
    clock.advance(dt.timedelta(days=11))
    assert services.expire_points() == 1
    assert services.expire_points() == 0  # idempotent
    assert selectors.points_balance(ada) == 50
    clock.advance(dt.timedelta(days=30))
    services.expire_points()
    assert selectors.points_balance(ada) == 0
    kinds = [leg.entry.kind for leg in selectors.statement_of(ada)]
    assert kinds == ["expire", "expire", "spend", "earn", "earn"]
    assert_ledgers_ok()


def test_reversing_an_activity_takes_back_the_unspent_points(transfer_rule):
    ada = new_user()
    activity(ada, amount=10_000, reference="t:rev")  # 5 + 100
    services.spend_points(user_id=ada.pk, points=40, reference="spend:r", memo="")
    services.reverse_activity(reference="t:rev")
    services.reverse_activity(reference="t:rev")
    assert selectors.points_balance(ada) == 0
    assert PointsEntry.objects.filter(kind="reverse").count() == 1
    assert_ledgers_ok()
