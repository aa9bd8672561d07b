"""On PostgreSQL: capacity holds when many customers are assigned to one manager at once, and a customer who
taps "My client manager" on several devices at once gets one manager."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from backend.advisors import services
from backend.advisors.models import Assignment
from backend.core.errors import DomainError

from .conftest import new_manager, new_user

pytestmark = pytest.mark.django_db(transaction=True)


def run_all(fns) -> list[object]:
    start = threading.Barrier(len(fns))
    results: list[object] = [None] * len(fns)

    def worker(i, fn):
        try:
            start.wait()
            results[i] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, fn)) for i, fn in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_capacity_holds_under_concurrent_assignment(require_postgres):
    mia = new_manager("Mia", capacity=3)
    customers = [new_user() for _ in range(8)]
    results = run_all([lambda c=c: services.assign_customer(customer_id=c.pk, manager_id=mia.pk, method="admin")
                       for c in customers])
    assert not [r for r in results if isinstance(r, BaseException) and not isinstance(r, DomainError)], results
    assert sum(isinstance(r, Assignment) for r in results) == 3
    assert all(r.code == "MANAGER_AT_CAPACITY" for r in results if isinstance(r, DomainError))
    assert Assignment.objects.filter(manager=mia, ended_at__isnull=True).count() == 3


def test_concurrent_my_client_manager_gives_one_assignment(require_postgres):
    for name in ("Mia", "Max", "Leo"):
        new_manager(name)
    ann = new_user("Ann")
    results = run_all([lambda: services.open_my_client_manager(customer=ann) for _ in range(5)])
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert Assignment.objects.filter(customer=ann).count() == 1
    assert len({r.conversation_id for r in results}) == 1


def test_frequency_cap_holds_when_broadcasts_are_delivered_at_once(require_postgres, settings):
    """Four broadcasts from two accounts delivered at the same instant reach a user at most BROADCAST_CAP times."""
    from backend.advisors.models import Broadcast, BroadcastDelivery

    settings.QUANZI_ADVISORS = {"BROADCAST_CAP": 2}
    ops = new_user("Ops", is_staff=True)
    ann, bob = new_user("Ann"), new_user("Bob")
    accounts = [services.create_service_account(slug=slug, name=slug, category="marketing")
                for slug in ("offers", "funds")]
    services.post_notice(account=accounts[0], user_id=bob.pk, key="earlier", text="x")  # not a broadcast
    broadcasts = [Broadcast.objects.create(sender=ops, service_account=accounts[i % 2], text=f"offer {i}",
                                           target=Broadcast.Target.LIST, target_user_ids=[ann.pk, bob.pk])
                  for i in range(4)]
    results = run_all([lambda b=b: services.deliver_broadcast(broadcast_id=b.pk) for b in broadcasts])
    assert not [r for r in results if isinstance(r, BaseException)], results
    for person in (ann, bob):
        assert BroadcastDelivery.objects.filter(user=person).count() == 2
    assert sum(Broadcast.objects.get(pk=b.pk).capped_count for b in broadcasts) == 4  # 2 each for Ann and Bob
