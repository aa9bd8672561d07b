"""Concurrency on PostgreSQL: many threads, few accounts, one idempotency key sent by many at once.

Money must move exactly once per key, no deadlock (or any other database error) may escape, and the ledger
must reconcile afterwards. Bounded: 24 threads × 8 transfers.
"""

from __future__ import annotations

import random
import threading

import pytest
from django.db import connection

from backend.core.errors import DomainError
from backend.wallet import services
from backend.wallet.models import IdempotencyRecord, JournalEntry, LedgerAccount
from backend.wallet.selectors import reconcile

from .conftest import fund, new_user

THREADS = 24
OPS_PER_THREAD = 8
SAME_KEY_THREADS = 8


@pytest.mark.django_db(transaction=True)
def test_concurrent_transfers_holds_and_one_shared_key(require_postgres):
    wallets = [services.ensure_wallet(user_id=new_user().pk) for _ in range(4)]
    for wallet in wallets:
        fund(wallet, 5_000)
    payer, payee = (services.ensure_wallet(user_id=new_user().pk) for _ in range(2))
    fund(payer, 1_000)
    holds = [
        services.place_hold(source_id=wallets[i % 4].pk, destination_id=wallets[(i + 1) % 4].pk, amount=100,
                            idempotency_key=f"test:race-hold-{i}").hold
        for i in range(4)
    ]
    ids = [w.pk for w in wallets]
    start = threading.Barrier(THREADS + SAME_KEY_THREADS + 2 * len(holds))
    lock = threading.Lock()
    moved: list[tuple[int, int, int]] = []
    shared_results: list[tuple[int, bool]] = []
    hold_outcomes: dict[int, list[str]] = {h.pk: [] for h in holds}
    escaped: list[BaseException] = []

    def worker(n: int) -> None:
        rng = random.Random(n)
        try:
            start.wait()
            for i in range(OPS_PER_THREAD):
                src, dst = rng.sample(ids, 2)
                amount = rng.randint(1, 1_500)
                try:
                    services.transfer(source_id=src, destination_id=dst, amount=amount,
                                      idempotency_key=f"conc-{n}-{i}")
                except services.InsufficientFunds:
                    continue
                with lock:
                    moved.append((src, dst, amount))
        except BaseException as exc:  # anything else (a deadlock, an IntegrityError) fails the test
            escaped.append(exc)
        finally:
            connection.close()

    def same_key_sender() -> None:
        try:
            start.wait()
            result = services.transfer(source_id=payer.pk, destination_id=payee.pk, amount=777,
                                       idempotency_key="shared-key-1")
            with lock:
                shared_results.append((result.entry.pk, result.replayed))
        except BaseException as exc:
            escaped.append(exc)
        finally:
            connection.close()

    def resolver(hold_id: int, action: str) -> None:
        try:
            start.wait()
            if action == "post":
                services.post_hold(hold_id=hold_id, idempotency_key=f"test:post-{hold_id}")
            else:
                services.void_hold(hold_id=hold_id, idempotency_key=f"test:void-{hold_id}")
            outcome = action
        except DomainError as exc:
            outcome = exc.code
        except BaseException as exc:
            escaped.append(exc)
            return
        finally:
            connection.close()
        with lock:
            hold_outcomes[hold_id].append(outcome)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    threads += [threading.Thread(target=same_key_sender) for _ in range(SAME_KEY_THREADS)]
    threads += [threading.Thread(target=resolver, args=(h.pk, a)) for h in holds for a in ("post", "void")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hung (lock wait?)"
    assert escaped == [], escaped

    # The shared key moved money exactly once; everybody got that one entry back.
    assert len(shared_results) == SAME_KEY_THREADS
    assert len({entry_id for entry_id, _ in shared_results}) == 1
    assert sorted(replayed for _, replayed in shared_results) == [False] + [True] * (SAME_KEY_THREADS - 1)
    assert IdempotencyRecord.objects.filter(key="shared-key-1").count() == 1
    assert list(LedgerAccount.objects.filter(pk__in=[payer.pk, payee.pk]).order_by("pk").values_list("balance", flat=True)) == (
        [223, 777] if payer.pk < payee.pk else [777, 223]
    )

    # Each raced hold was resolved exactly once: one of post/void won, the other saw HOLD_NOT_PENDING.
    posted = set()
    for hold_id, outcomes in hold_outcomes.items():
        assert sorted(outcomes) in (["HOLD_NOT_PENDING", "post"], ["HOLD_NOT_PENDING", "void"]), outcomes
        if "post" in outcomes:
            posted.add(hold_id)
    assert JournalEntry.objects.filter(hold__isnull=False).count() == len(posted)

    # Balances are exactly the start plus every successful transfer and posted hold.
    expected = {pk: 5_000 for pk in ids}
    for src, dst, amount in moved:
        expected[src] -= amount
        expected[dst] += amount
    for hold in holds:
        if hold.pk in posted:
            expected[hold.source_id] -= hold.amount
            expected[hold.destination_id] += hold.amount
    actual = dict(LedgerAccount.objects.filter(pk__in=ids).values_list("pk", "balance"))
    assert actual == expected
    assert len(moved) > THREADS  # the run really moved money, not just refused it
    assert all(LedgerAccount.objects.get(pk=pk).held == 0 for pk in ids)
    report = reconcile()
    assert report.ok, report.problems
