"""Money in chat under concurrency on PostgreSQL: red-packet grabs/s and AA payments/s, each next to the
ledger's plain-transfer rate measured in the same run (the ratio's base).

    .venv/bin/python bench/money.py           (from the repository root; about 30 s; BENCH_QUICK=1: ~10 s)

Runs on a scratch PostgreSQL database next to DATABASE_URL (bench/scratch.py: cloned from the migrated
template, dropped at the end, also when the bench fails), three phases. No Redis: in-memory channel layer and cache, Celery's
memory broker with no worker (as bench/ledger.py). Prints figures (bench/report.py); asserts nothing about them, except that
the ledger reconciles afterwards (a benchmark that corrupts money is not a result).

- plain transfers: THREADS threads, wallet.services.transfer between random pairs of a few wallets.
- red packets: rounds of one 50-part lucky packet in a 201-member group; CONTENDERS (200) members try to
  grab it through THREADS connections; grabs/s counts successful grabs over the time spent grabbing.
- AA payments: bills of 50 participants each; THREADS threads pay every share (pay_share), payments/s.
Rate limits on money actions are lifted for the run (they are per user per minute).
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import figure, quick  # noqa: E402
from bench.scratch import ScratchDatabase, use_scratch_database  # noqa: E402
from bench.turns import measuring  # noqa: E402

THREADS = int(os.environ.get("BENCH_THREADS", "16"))
CONTENDERS = int(os.environ.get("BENCH_CONTENDERS", "100" if quick() else "200"))
PARTS = int(os.environ.get("BENCH_PACKET_PARTS", "50"))
# Quick mode: 1 s of plain transfers, then at least one packet and one bill (each phase runs whole rounds).
SECONDS = float(os.environ.get("BENCH_SECONDS", "1" if quick() else "8"))


def pool(jobs) -> tuple[int, int, float]:
    """Run callables (a list, or a generator that stops at a deadline) on THREADS threads, each its own
    connection, closed loop: (succeeded, refused with a domain error, elapsed seconds)."""
    from django.db import connection

    from backend.core.errors import DomainError

    lock = threading.Lock()
    pending = iter(jobs)
    counts = [0, 0]

    def worker() -> None:
        try:
            while True:
                with lock:
                    job = next(pending, None)
                if job is None:
                    return
                try:
                    job()
                    outcome = 0
                except DomainError:
                    outcome = 1
                with lock:
                    counts[outcome] += 1
        finally:
            connection.close()

    started = time.perf_counter()
    workers = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    return counts[0], counts[1], time.perf_counter() - started


def funded_people(count: int) -> list:
    """`count` verified users (KYC 3) with wallets of ¥1,000,000 each and the first befriended with all the
    others (only friends share a group: core.reach), written in bulk: what create_user, ensure_wallet, a top-up
    and an accepted friend request leave, in one funding entry (set-up, not measured: through the services it
    was most of the bench's set-up)."""
    from django.db import transaction

    from backend.accounts.models import User, phone_index
    from backend.circles.models import Friendship
    from backend.wallet import services as wallet
    from backend.wallet.models import JournalEntry, LedgerAccount, Leg

    fund = 100_000_000
    users = []
    for n in range(count):
        phone = f"+86135{n:08d}"
        user = User(phone=phone, phone_index=phone_index(phone), display_name=f"Bench {n}", kyc_level=3)
        user.set_unusable_password()
        users.append(user)
    users = User.objects.bulk_create(users)
    wallets = LedgerAccount.objects.bulk_create(
        [LedgerAccount(kind=LedgerAccount.Kind.USER_WALLET, owner_id=u.pk) for u in users])
    bank = wallet.system_account(LedgerAccount.Kind.EXTERNAL_BANK)
    with transaction.atomic():
        bank = LedgerAccount.objects.select_for_update().get(pk=bank.pk)
        entry = JournalEntry.objects.create(kind=JournalEntry.Kind.TOP_UP, memo="bench funding")
        total = fund * len(wallets)
        Leg.objects.bulk_create([Leg(entry=entry, account=bank, amount=-total, balance_after=bank.balance - total)]
                                + [Leg(entry=entry, account=w, amount=fund, balance_after=fund) for w in wallets])
        LedgerAccount.objects.filter(pk=bank.pk).update(balance=bank.balance - total)
        LedgerAccount.objects.filter(pk__in=[w.pk for w in wallets]).update(balance=fund)
    Friendship.objects.bulk_create([Friendship(user=a, friend=b) for m in users[1:]
                                    for a, b in ((users[0], m), (m, users[0]))])
    return users


def main() -> None:
    with ScratchDatabase("money") as url:  # dropped on the way out, whatever happened inside
        use_scratch_database(url)
        bench()


def bench() -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from backend.celery import app as celery_app

    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_url = "memory://localhost/"  # a host keeps kombu from warning
    settings.QUANZI_PAYMENTS = {"MONEY_ACTIONS_PER_MINUTE": 10**9, "PACKET_MAX_PARTS": 500}
    os.environ["QUANZI_CHAT_SEND_LIMIT"] = str(10**9)  # the sender posts a card per packet and bill

    from backend.chat import services as chat
    from backend.payments import services
    from backend.wallet import services as wallet
    from backend.wallet.selectors import reconcile

    people = funded_people(CONTENDERS + 1)
    sender, members = people[0], people[1:]
    group = chat.create_group(owner=sender, title="Bench", member_ids=[m.pk for m in members])
    connection.close()
    print(f"money bench: PostgreSQL, {THREADS} threads, {CONTENDERS} contenders, {SECONDS:.0f} s per phase")

    wallets = [wallet.ensure_wallet(user_id=m.pk).pk for m in members[:8]]
    connection.close()
    with measuring():  # quick mode: the machine to itself (bench/turns.py)
        # --- base: plain ledger transfers --------------------------------------------------------------
        rng = random.Random(1)
        deadline = time.perf_counter() + SECONDS
        counter = iter(range(10**9))

        def plain_jobs():
            while time.perf_counter() < deadline:
                src, dst = rng.sample(wallets, 2)
                n = next(counter)
                yield lambda src=src, dst=dst, n=n: wallet.transfer(source_id=src, destination_id=dst, amount=1,
                                                                   idempotency_key=f"bench:plain:{n}")

        done, refused, elapsed = pool(plain_jobs())
        plain_rate = done / elapsed
        print(f"plain transfers : {done:7d} in {elapsed:5.1f} s = {plain_rate:8.1f}/s  ({refused} refused)")

        # --- red packets: 200 contenders per 50-part packet ----------------------------------------------
        grabbed = refused_total = 0
        grabbing = 0.0
        rounds = 0
        started = time.perf_counter()
        while time.perf_counter() - started < SECONDS:
            packet, _ = services.send_red_packet(sender=sender, conversation_id=group.pk, kind="lucky",
                                                 amount=PARTS * 100, count=PARTS,
                                                 idempotency_key=f"bench-packet-{rounds}")
            jobs = [lambda m=m, p=packet.pk: services.grab_red_packet(user=m, packet_id=p) for m in members]
            random.Random(rounds).shuffle(jobs)
            ok, no, elapsed = pool(jobs)
            grabbed, refused_total = grabbed + ok, refused_total + no
            grabbing, rounds = grabbing + elapsed, rounds + 1
        grab_rate = grabbed / grabbing
        print(f"red-packet grabs: {grabbed:7d} in {grabbing:5.1f} s = {grab_rate:8.1f}/s  ({rounds} packets × "
              f"{PARTS} parts, {refused_total} refused: packet empty)   ratio to plain transfers "
              f"{grab_rate / plain_rate:.2f}")
        figure("money.plain_transfers_per_s", round(plain_rate, 1), "transfers/s")
        figure("money.red_packet.grabs_per_s", round(grab_rate, 1), "grabs/s")
        figure("money.red_packet.ratio_grabs_vs_plain", round(grab_rate / plain_rate, 3), "ratio")

        # --- AA payments ---------------------------------------------------------------------------------
        paid = 0
        paying = 0.0
        bills = 0
        started = time.perf_counter()
        while time.perf_counter() - started < SECONDS:
            payers = members[(bills * 50) % CONTENDERS:][:50] or members[:50]
            bill, _ = services.create_bill(creator=sender, conversation_id=group.pk, title=f"Bench {bills}",
                                           amount=len(payers) * 100, method="equal",
                                           participants=[p.pk for p in payers],
                                           idempotency_key=f"bench-bill-{bills}")
            shares = {s.participant_id: s.pk for s in bill.shares.all()}
            jobs = [lambda p=p, s=shares[p.pk]: services.pay_share(user=p, share_id=s) for p in payers]
            ok, _, elapsed = pool(jobs)
            paid, paying, bills = paid + ok, paying + elapsed, bills + 1
        pay_rate = paid / paying
        print(f"AA payments     : {paid:7d} in {paying:5.1f} s = {pay_rate:8.1f}/s  ({bills} bills × 50 shares)"
              f"   ratio to plain transfers {pay_rate / plain_rate:.2f}")
        figure("money.aa.payments_per_s", round(pay_rate, 1), "payments/s")
        figure("money.aa.ratio_payments_vs_plain", round(pay_rate / plain_rate, 3), "ratio")

    report = reconcile()
    print(f"ledger reconciles: {report.ok} ({report.entries_checked} entries)")
    figure("money.ledger_reconciles", int(report.ok), "bool", "= 1")
    if not report.ok:
        raise SystemExit("\n".join(report.problems[:20]))


if __name__ == "__main__":
    main()
