"""PostgreSQL concurrency: grabs, payments, accept/refund and settle-up races move money exactly once.

Threads share one PostgreSQL server with other test runs, so contenders are served by a bounded pool of
connections (THREADS) that all start at one barrier; every contender is a different member."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
from django.db import connection

from backend.core.errors import DomainError
from backend.payments import services
from backend.payments.models import RedPacket, RedPacketGrab
from backend.wallet.models import LedgerAccount
from tests.conftest import open_direct_between_friends

from .conftest import assert_ledger_ok, fund, group_of, new_user

THREADS = 24

pytestmark = pytest.mark.django_db(transaction=True)


def race(jobs: list[Callable[[], object]], threads: int = THREADS) -> tuple[list[object], list[str], list[BaseException]]:
    """Run the jobs on `threads` connections started together: (results, domain error codes, escaped)."""
    lock = threading.Lock()
    queue = list(enumerate(jobs))
    results: list[object] = [None] * len(jobs)
    codes: list[str] = []
    escaped: list[BaseException] = []
    start = threading.Barrier(min(threads, len(jobs)))

    def worker() -> None:
        try:
            start.wait()
            while True:
                with lock:
                    if not queue:
                        return
                    index, job = queue.pop(0)
                try:
                    results[index] = job()
                except DomainError as exc:
                    with lock:
                        codes.append(exc.code)
        except BaseException as exc:  # a deadlock, an IntegrityError: the test fails
            escaped.append(exc)
        finally:
            connection.close()

    pool = [threading.Thread(target=worker) for _ in range(min(threads, len(jobs)))]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in pool), "a thread hung"
    return results, codes, escaped


def test_200_members_grab_a_50_part_packet(require_postgres, settings):
    settings.QUANZI_PAYMENTS = {"PACKET_MAX_PARTS": 200}
    settings.QUANZI_CIRCLES = {"FRIEND_REQUESTS_PER_HOUR": 500}  # the sender befriends all 200 to group them
    sender = new_user("Sender")
    fund(sender, 100_000)
    members = [new_user() for _ in range(200)]
    group = group_of(sender, *members)
    packet, _ = services.send_red_packet(sender=sender, conversation_id=group.pk, kind="lucky", amount=88_888,
                                         count=50, idempotency_key="race-packet-1")
    # Each member tries twice: once in the crowd, once more at the end of the queue.
    jobs = [lambda u=u: services.grab_red_packet(user=u, packet_id=packet.pk) for u in members]
    jobs += [lambda u=u: services.grab_red_packet(user=u, packet_id=packet.pk) for u in members[:20]]
    results, codes, escaped = race(jobs)
    assert not escaped, escaped
    grabs = [r for r in results if r is not None]
    assert len(grabs) == 50
    assert Counter(codes)["PACKET_CLOSED"] + Counter(codes)["ALREADY_GRABBED"] == len(jobs) - 50
    rows = list(RedPacketGrab.objects.filter(packet=packet).order_by("index"))
    assert len({g.user_id for g in rows}) == 50 and [g.index for g in rows] == list(range(50))
    assert sum(g.amount for g in rows) == 88_888 and min(g.amount for g in rows) >= 1
    packet.refresh_from_db()
    assert packet.status == "empty" and packet.grabbed_amount == 88_888
    assert [g.amount for g in rows] == packet.parts  # served in commit order, part by part
    assert LedgerAccount.objects.get(kind="payments_escrow").balance == 0
    assert packet.card_version == 50
    assert_ledger_ok()


def test_concurrent_expiry_scans_refund_once_and_late_grabs_get_nothing(require_postgres):
    import datetime as dt

    from backend.core import clock

    sender = new_user("Sender")
    fund(sender, 10_000)
    members = [new_user() for _ in range(30)]
    group = group_of(sender, *members)
    packet, _ = services.send_red_packet(sender=sender, conversation_id=group.pk, kind="fixed", amount=3_000,
                                         count=30, idempotency_key="race-packet-2")
    for member in members[:10]:
        services.grab_red_packet(user=member, packet_id=packet.pk)
    RedPacket.objects.filter(pk=packet.pk).update(expires_at=clock.now() - dt.timedelta(seconds=1))
    jobs: list[Callable[[], object]] = [lambda u=u: services.grab_red_packet(user=u, packet_id=packet.pk)
                                        for u in members[10:]]
    jobs[5:5] = [services.expire_red_packets for _ in range(4)]
    results, codes, escaped = race(jobs, threads=12)
    assert not escaped, escaped
    assert sorted(r for r in results if isinstance(r, int)) == [0, 0, 0, 1]  # one scan refunded it
    assert set(codes) == {"PACKET_CLOSED"} and len(codes) == 20
    packet.refresh_from_db()
    assert packet.status == "expired" and packet.refunded_amount == 2_000 and packet.grabbed_amount == 1_000
    assert LedgerAccount.objects.get(kind="payments_escrow").balance == 0
    assert_ledger_ok()


def test_accept_racing_the_24h_refund_moves_money_once(require_postgres):
    import datetime as dt
    import random
    import time

    from backend.core import clock
    from backend.payments.models import FriendTransfer

    from .conftest import balance

    sender = new_user("Sender", kyc_level=3)
    fund(sender, 100_000)
    recipients = [new_user() for _ in range(16)]
    transfers = []
    for n, recipient in enumerate(recipients):
        direct = open_direct_between_friends(sender, recipient)
        transfers.append(services.send_transfer(sender=sender, conversation_id=direct.pk, amount=1_000 + n,
                                                idempotency_key=f"race-transfer-{n}")[0])
    deadline = clock.now() + dt.timedelta(seconds=1)
    FriendTransfer.objects.filter(pk__in=[t.pk for t in transfers]).update(expires_at=deadline)
    rng = random.Random(7)

    def at(offset: float, job: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            time.sleep(max(0.0, (deadline - clock.now()).total_seconds() + offset))
            return job()
        return run

    jobs = [at(rng.uniform(-0.03, 0.03), lambda t=t, r=r: services.accept_transfer(user=r, transfer_id=t.pk))
            for t, r in zip(transfers, recipients, strict=True)]
    for n in range(4):
        jobs.insert(n * 4, at(rng.uniform(0.0, 0.02), services.expire_transfers))
    _, codes, escaped = race(jobs, threads=len(jobs))
    assert not escaped, escaped
    assert set(codes) <= {"ALREADY_RESOLVED", "TRANSFER_EXPIRED"}
    services.expire_transfers()  # whatever the racing scans left
    accepted = 0
    for transfer, recipient in zip(transfers, recipients, strict=True):
        transfer.refresh_from_db()
        assert transfer.status in ("accepted", "refunded")
        got = transfer.amount if transfer.status == "accepted" else 0
        assert balance(recipient) == (got, 0)
        accepted += got
    assert balance(sender) == (100_000 - accepted, 0)
    assert_ledger_ok()


def test_concurrent_aa_payments_and_a_cancel_never_double_charge(require_postgres):
    from backend.payments.models import Share
    from backend.wallet.models import JournalEntry

    from .conftest import balance

    creator = new_user("Creator")
    fund(creator, 10_000)
    payers = [new_user() for _ in range(20)]
    for payer in payers:
        fund(payer, 1_000)
    group = group_of(creator, *payers)
    bill, _ = services.create_bill(creator=creator, conversation_id=group.pk, title="团建", amount=4_000,
                                   method="equal", participants=[p.pk for p in payers], idempotency_key="race-bill-1")
    shares = {s.participant_id: s.pk for s in bill.shares.all()}
    jobs: list[Callable[[], object]] = []
    for payer in payers:  # every payer taps "pay" twice
        jobs += [lambda p=payer: services.pay_share(user=p, share_id=shares[p.pk])] * 2
    jobs.insert(20, lambda: services.cancel_bill(user=creator, bill_id=bill.pk, refund_paid=True))
    _, codes, escaped = race(jobs)
    assert not escaped, escaped
    assert set(codes) <= {"BILL_NOT_OPEN"}
    bill.refresh_from_db()
    assert bill.status == "cancelled"
    for payer in payers:
        share = Share.objects.get(pk=shares[payer.pk])
        assert share.status in ("refunded", "void")
        assert JournalEntry.objects.filter(pk=share.entry_id).count() == (1 if share.status == "refunded" else 0)
        assert balance(payer) == (1_000, 0)  # charged at most once, and refunded
    assert balance(creator) == (10_000, 0)
    assert_ledger_ok()


def test_settle_up_racing_manual_payments_never_pays_a_share_twice(require_postgres):
    from backend.payments.models import Settlement

    from .conftest import balance

    creator = new_user("Creator")
    fund(creator, 10_000)
    payers = [new_user() for _ in range(12)]
    for payer in payers:
        fund(payer, 1_000)
    group = group_of(creator, *payers)
    bill, _ = services.create_bill(creator=creator, conversation_id=group.pk, title="聚餐", amount=1_200,
                                   method="equal", participants=[p.pk for p in payers], idempotency_key="race-bill-2")
    shares = {s.participant_id: s.pk for s in bill.shares.all()}

    def settle() -> object:
        settlement = services.start_settlement(user=creator, conversation_id=group.pk)
        for transfer in list(settlement.transfers.all()):
            debtor = next(p for p in payers if p.pk == transfer.debtor_id)
            services.pay_settlement(user=debtor, settlement_id=settlement.pk)
        return settlement

    jobs: list[Callable[[], object]] = [lambda p=p: services.pay_share(user=p, share_id=shares[p.pk]) for p in payers]
    jobs.insert(6, settle)
    _, codes, escaped = race(jobs, threads=13)
    assert not escaped, escaped
    assert set(codes) <= {"SHARE_IN_SETTLEMENT", "NOTHING_TO_SETTLE"}
    for payer in payers:
        assert balance(payer) == (900, 0), "each share is paid exactly once, one way or the other"
    assert balance(creator) == (11_200, 0)
    bill.refresh_from_db()
    assert bill.status == "completed"
    assert not Settlement.objects.filter(status="open").exists()
    assert_ledger_ok()
