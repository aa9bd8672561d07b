"""Ledger throughput under concurrency on PostgreSQL: the Django services vs the same SQL by hand.

    .venv/bin/python bench/ledger.py          (from the repository root; about 60 s, BENCH_QUICK=1 about 15 s)

Runs on a scratch PostgreSQL database next to DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/),
cloned from the migrated template (bench/scratch.py), runs every phase, and drops it at the end. No Redis: the channel layer is in-memory and Celery's
broker is in memory (no worker runs), as in the embedded mode. Figures go through bench/report.py.

Three cases, each run twice — through `wallet.services` and as hand-written SQL over psycopg — with 16 threads:
- contended: transfers between random pairs of 8 wallets (threads queue on the same rows);
- uncontended: transfers between random pairs of 10,000 wallets (quick mode 2,000; rarely the same rows);
- topups: top-ups and withdrawals of random wallets among the 10,000 through the bank gateway (SANDBOX):
  every one of them also posts on the external-bank system account.

The raw transfer is what a correct double-entry transfer needs, no less:
    lock both accounts FOR UPDATE in ascending id order → look up the idempotency key → check funds →
    insert the entry and its two legs → update both balances → insert the idempotency record →
    insert the two balance-change notification rows (body encrypted) → commit (the deferred zero-sum trigger).
The raw top-up / withdrawal is the services' protocol by hand: one transaction records the operation (and a
withdrawal's hold) under the wallet's lock with its idempotency key; the sandbox bank records the reference;
a second transaction locks wallet and external-bank account, posts the entry (or the hold), updates the
balances, writes the notification and settles the operation. It posts on the same external-bank account row
the services would pick for that wallet (`services.external_bank_account_for`).
The Django phases additionally do what the services do around that: input validation, rate limiting, and after
commit the socket doorbell (in-memory channel layer) and the push enqueue (in-memory broker). The ratio
django/raw is what we track (issue 15: >= 0.5 contended, >= 0.7 uncontended).
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.report import figure, quick  # noqa: E402
from bench.scratch import ScratchDatabase, use_scratch_database  # noqa: E402
from bench.servers import delete_redis_keys, redis_url  # noqa: E402
from bench.turns import measuring  # noqa: E402

THREADS = int(os.environ.get("BENCH_THREADS", "16"))
CONTENDED_WALLETS = int(os.environ.get("BENCH_WALLETS", "8"))
# Quick mode: 2,000 wallets (16 threads still rarely meet on a row; set-up takes a fifth of the time).
UNCONTENDED_WALLETS = int(os.environ.get("BENCH_MANY_WALLETS", "2000" if quick() else "10000"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "1" if quick() else "8"))
FUND_FEN = 1_000_000_00  # ¥1,000,000 a wallet: nobody runs dry






def run_threads(target, seconds: float) -> tuple[int, int, float]:
    """Run `target(n, deadline, counts)` on THREADS threads; returns (operations, errors, elapsed)."""
    counts = [[0, 0] for _ in range(THREADS)]
    started = time.perf_counter()
    deadline = started + seconds
    threads = [threading.Thread(target=target, args=(n, deadline, counts[n])) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return sum(c[0] for c in counts), sum(c[1] for c in counts), elapsed




def main() -> None:
    tag = f"benchledger{os.getpid()}"
    with ScratchDatabase("ledger") as scratch_url:  # cloned from the migrated template, dropped on the way out
        use_scratch_database(scratch_url)
        # Doorbells through channels-redis and the cache (rate limits) on Redis, as in production, under a key
        # prefix of the bench's own: on the in-memory layer every transfer's ring started a thread and an event
        # loop (async_to_sync from a plain thread), a cost production does not pay (core.realtime's ring loop).
        os.environ.update({"REDIS_URL": redis_url(), "CHANNELS_PREFIX": tag, "CACHE_PREFIX": tag})
        try:
            bench(scratch_url)
        finally:
            delete_redis_keys(redis_url(), tag)


def open_funded_wallets(count: int) -> list:
    """`count` users with wallets, each funded FUND_FEN from the external bank in one bulk entry (setup, not
    measured: 10,000 transfers one by one would take minutes)."""
    from django.db import connection, transaction

    from backend.accounts.models import User, phone_index
    from backend.wallet import services
    from backend.wallet.models import JournalEntry, LedgerAccount, Leg

    users = []
    for n in range(count):
        phone = f"+86137{n:08d}"
        user = User(phone=phone, phone_index=phone_index(phone), display_name=f"Bench {n}")
        user.set_unusable_password()
        users.append(user)
    users = User.objects.bulk_create(users, batch_size=2000)
    wallets = LedgerAccount.objects.bulk_create(
        [LedgerAccount(kind=LedgerAccount.Kind.USER_WALLET, owner_id=u.pk) for u in users], batch_size=2000)
    bank = services.system_account(LedgerAccount.Kind.EXTERNAL_BANK)
    with transaction.atomic():
        bank = LedgerAccount.objects.select_for_update().get(pk=bank.pk)
        entry = JournalEntry.objects.create(kind=JournalEntry.Kind.TOP_UP, memo="bench funding")
        total = FUND_FEN * len(wallets)
        legs = [Leg(entry=entry, account=bank, amount=-total, balance_after=bank.balance - total)]
        legs += [Leg(entry=entry, account=w, amount=FUND_FEN, balance_after=FUND_FEN) for w in wallets]
        Leg.objects.bulk_create(legs, batch_size=2000)
        LedgerAccount.objects.filter(pk=bank.pk).update(balance=bank.balance - total)
        LedgerAccount.objects.filter(pk__in=[w.pk for w in wallets]).update(balance=FUND_FEN)
    connection.close()
    return wallets


def bench(scratch_url: str) -> None:
    import django

    django.setup()
    from django.db import connection

    from backend.celery import app as celery_app

    # As in production, a push is enqueued for the notifications worker, not delivered inline: tasks go to
    # Celery's in-process memory broker and no worker runs. (Without REDIS_URL settings make Celery eager.)
    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_url = "memory://localhost/"  # a host keeps kombu from warning


    from backend.accounts.models import User
    from backend.wallet import services
    from backend.wallet.selectors import reconcile

    wallets = open_funded_wallets(UNCONTENDED_WALLETS)
    contended_ids = [w.pk for w in wallets[:CONTENDED_WALLETS]]
    all_ids = [w.pk for w in wallets]
    owner_of = {w.pk: w.owner_id for w in wallets}
    name_of = dict(User.objects.filter(pk__in=owner_of.values()).values_list("pk", "display_name"))
    connection.close()
    print(f"ledger bench: PostgreSQL, {THREADS} threads, {SECONDS:.1f} s per phase; contended {CONTENDED_WALLETS} "
          f"wallets, uncontended {UNCONTENDED_WALLETS:,} wallets")

    raw = RawLedger(scratch_url, owner_of, name_of)

    def django_transfers(ids: list[int], tag: str):
        def worker(n: int, deadline: float, count: list[int]) -> None:
            from django.db import connection as conn

            rng = random.Random(n)
            i = 0
            try:
                while time.perf_counter() < deadline:
                    src, dst = rng.sample(ids, 2)
                    i += 1
                    try:
                        services.transfer(source_id=src, destination_id=dst, amount=rng.randint(1, 100),
                                          idempotency_key=f"bench:{tag}:{n}:{i}")
                        count[0] += 1
                    except Exception as exc:  # counted, reported, never hidden
                        count[1] += 1
                        if count[1] == 1:
                            print(f"  django thread {n}: {type(exc).__name__}: {exc}")
            finally:
                conn.close()
        return worker

    def raw_transfers(ids: list[int], tag: str):
        def worker(n: int, deadline: float, count: list[int]) -> None:
            rng = random.Random(1000 + n)
            raw.loop(deadline, count, lambda conn, i: raw.transfer(conn, *rng.sample(ids, 2), rng.randint(1, 100),
                                                                   f"bench:{tag}:{n}:{i}"), f"raw thread {n}")
        return worker

    user_of = {}

    def django_bank(n: int, deadline: float, count: list[int]) -> None:
        from django.db import connection as conn

        rng = random.Random(2000 + n)
        i = 0
        try:
            while time.perf_counter() < deadline:
                wallet_id = rng.choice(all_ids)
                user = user_of.get(wallet_id) or User.objects.get(pk=owner_of[wallet_id])
                user_of[wallet_id] = user
                i += 1
                operation = services.top_up if i % 2 else services.withdraw
                try:
                    result = operation(user=user, amount=rng.randint(1, 40), idempotency_key=f"bench-{n}-{i}")
                    if result.operation.status != "succeeded":
                        raise RuntimeError(f"bank operation {result.operation.status}")
                    count[0] += 1
                except Exception as exc:
                    count[1] += 1
                    if count[1] == 1:
                        print(f"  django thread {n}: {type(exc).__name__}: {exc}")
        finally:
            conn.close()

    def raw_bank(n: int, deadline: float, count: list[int]) -> None:
        rng = random.Random(3000 + n)
        raw.loop(deadline, count, lambda conn, i: raw.bank_operation(
            conn, rng.choice(all_ids), rng.randint(1, 40), f"bench-raw-{n}-{i}", withdrawal=not i % 2),
            f"raw thread {n}")

    cases = [
        ("contended", django_transfers(contended_ids, "dj-c"), raw_transfers(contended_ids, "raw-c"), ">= 0.5"),
        ("uncontended", django_transfers(all_ids, "dj-u"), raw_transfers(all_ids, "raw-u"), ">= 0.7"),
        ("topups", django_bank, raw_bank, ""),
    ]
    with measuring():  # quick mode: the machine to itself (bench/turns.py)
        for name, django_worker, raw_worker, goal in cases:
            done, errors, elapsed = run_threads(django_worker, SECONDS)
            django_rate = done / elapsed
            print(f"{name:<11} django services: {done:6d} in {elapsed:4.1f} s ({errors} errors)")
            done, errors, elapsed = run_threads(raw_worker, SECONDS)
            raw_rate = done / elapsed
            print(f"{name:<11} raw SQL psycopg: {done:6d} in {elapsed:4.1f} s ({errors} errors)")
            unit = "ops/s" if name == "topups" else "transfers/s"
            figure(f"ledger.{name}.django_per_s", round(django_rate, 1), unit)
            figure(f"ledger.{name}.raw_per_s", round(raw_rate, 1), unit)
            figure(f"ledger.{name}.ratio", round(django_rate / raw_rate, 2) if raw_rate else None, "ratio", goal)

    report = reconcile()
    print(f"reconcile after every phase: {'ok' if report.ok else report.problems[:5]} "
          f"({report.entries_checked} entries, ledger total {report.ledger_total})")
    connection.close()
    if not report.ok:
        raise SystemExit("the ledger does not reconcile after the bench")


class RawLedger:
    """The ledger's statements by hand (psycopg, no ORM): the baseline the services are compared with."""

    def __init__(self, url: str, owner_of: dict[int, int], name_of: dict[int, str]) -> None:
        from backend.core.crypto import keyring
        from backend.notifications.models import Notification
        from backend.wallet import services
        from backend.wallet.models import LedgerAccount

        self.url, self.owner_of, self.name_of = url, owner_of, name_of
        self.keyring = keyring()
        self.note_columns = [f.column for f in Notification._meta.concrete_fields if not f.primary_key]
        self.bank_for = {wallet_id: services.external_bank_account_for(wallet_id).pk for wallet_id in owner_of}
        self.bank_ids = set(self.bank_for.values()) | set(
            LedgerAccount.objects.filter(kind=LedgerAccount.Kind.EXTERNAL_BANK).values_list("pk", flat=True))

    def loop(self, deadline: float, count: list[int], step, label: str) -> None:
        import psycopg

        i = 0
        with psycopg.connect(self.url) as conn:
            while time.perf_counter() < deadline:
                i += 1
                try:
                    step(conn, i)
                    count[0] += 1
                except Exception as exc:
                    count[1] += 1
                    if count[1] == 1:
                        print(f"  {label}: {type(exc).__name__}: {exc}")

    def _notify(self, cur, account: int, entry_id: int, line: str, available: int, now: str) -> None:
        import json

        body = self.keyring.encrypt(f"{line}。可用余额 ¥{available / 100:,.2f}。",
                                    context="notifications.notification.body")
        values = {"recipient_id": self.owner_of[account], "kind": "money", "event": "wallet.balance_changed",
                  "title": "资金变动提醒", "body": body, "created_at": now, "collapse_key": "",
                  "payload": json.dumps({"entry_id": f"JournalEntry:{entry_id}", "wallet_id": f"Wallet:{account}"}),
                  "push_state": "pending", "push_reason": "", "push_attempts": 0}
        columns = [c for c in self.note_columns if c in values]
        cur.execute(f"INSERT INTO notifications_notification ({', '.join(columns)}) "
                    f"VALUES ({', '.join(['%s'] * len(columns))})", [values[c] for c in columns])

    def _lock(self, cur, ids) -> dict[int, tuple[int, int]]:
        cur.execute("SELECT id, balance, held FROM wallet_ledgeraccount WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                    (sorted(ids),))
        return {r[0]: (r[1], r[2]) for r in cur.fetchall()}

    def _post(self, cur, src: int, dst: int, amount: int, rows, kind: str, now: str, *, hold_id=None) -> int:
        cur.execute("INSERT INTO wallet_journalentry (kind, memo, hold_id, created_at) VALUES (%s, '', %s, %s) "
                    "RETURNING id", (kind, hold_id, now))
        entry_id = cur.fetchone()[0]
        src_after, dst_after = rows[src][0] - amount, rows[dst][0] + amount
        cur.execute("INSERT INTO wallet_leg (entry_id, account_id, amount, balance_after) "
                    "VALUES (%s, %s, %s, %s), (%s, %s, %s, %s)",
                    (entry_id, src, -amount, src_after, entry_id, dst, amount, dst_after))
        for account, after in ((src, src_after), (dst, dst_after)):
            cur.execute("UPDATE wallet_ledgeraccount SET balance = %s WHERE id = %s", (after, account))
        for account, after, sign in ((src, src_after, "支出"), (dst, dst_after, "收入")):
            if account in self.owner_of:
                self._notify(cur, account, entry_id, f"{sign} ¥{amount / 100:.2f}", after - rows[account][1], now)
        return entry_id

    def transfer(self, conn, src: int, dst: int, amount: int, key: str) -> None:
        now = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime())
        with conn.transaction(), conn.cursor() as cur:
            rows = self._lock(cur, (src, dst))
            cur.execute("SELECT 1 FROM wallet_idempotencyrecord WHERE scope = %s AND key = %s", (f"acct:{src}", key))
            if cur.fetchone() is not None or rows[src][0] - rows[src][1] < amount:
                raise RuntimeError("replay or insufficient funds: not expected in the bench")
            entry_id = self._post(cur, src, dst, amount, rows, "transfer", now)
            cur.execute("INSERT INTO wallet_idempotencyrecord (scope, key, operation, fingerprint, entry_id, "
                        "created_at) VALUES (%s, %s, 'transfer', %s, %s, %s)",
                        (f"acct:{src}", key, "0" * 64, entry_id, now))

    def bank_operation(self, conn, wallet: int, amount: int, key: str, *, withdrawal: bool) -> None:
        now = time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime())
        kind, bank, reference = ("withdrawal" if withdrawal else "top_up"), self.bank_for[wallet], uuid.uuid4()
        with conn.transaction(), conn.cursor() as cur:  # 1: record the operation under the wallet's lock
            rows = self._lock(cur, (wallet,))
            cur.execute("SELECT 1 FROM wallet_idempotencyrecord WHERE scope = %s AND key = %s",
                        (f"acct:{wallet}", key))
            if cur.fetchone() is not None:
                raise RuntimeError("replay: not expected in the bench")
            hold_id = None
            if withdrawal:
                if rows[wallet][0] - rows[wallet][1] < amount:
                    raise RuntimeError("insufficient funds: not expected in the bench")
                cur.execute("UPDATE wallet_ledgeraccount SET held = held + %s WHERE id = %s", (amount, wallet))
                cur.execute("INSERT INTO wallet_hold (source_id, destination_id, amount, status, kind, memo, "
                            "created_at) VALUES (%s, %s, %s, 'pending', 'withdrawal', '', %s) RETURNING id",
                            (wallet, bank, amount, now))
                hold_id = cur.fetchone()[0]
            cur.execute("INSERT INTO wallet_bankoperation (kind, account_id, amount, status, reference, "
                        "gateway_reference, failure_code, hold_id, created_at, last_sent_at) "
                        "VALUES (%s, %s, %s, 'pending', %s, '', '', %s, %s, %s) RETURNING id",
                        (kind, wallet, amount, reference, hold_id, now, now))
            operation_id = cur.fetchone()[0]
            cur.execute("INSERT INTO wallet_idempotencyrecord (scope, key, operation, fingerprint, "
                        "bank_operation_id, created_at) VALUES (%s, %s, %s, %s, %s, %s)",
                        (f"acct:{wallet}", key, kind, "0" * 64, operation_id, now))
        with conn.transaction():  # the sandbox bank records the reference (its own commit)
            conn.execute("INSERT INTO wallet_sandboxbankrecord (reference, operation, amount, succeeded, "
                         "failure_code, times_received, created_at) VALUES (%s, %s, %s, true, '', 1, %s)",
                         (str(reference), "payout" if withdrawal else "collect", amount, now))
        with conn.transaction(), conn.cursor() as cur:  # 2: settle: post on the wallet and the bank account
            rows = self._lock(cur, (wallet, bank))
            cur.execute("SELECT status FROM wallet_bankoperation WHERE id = %s FOR UPDATE", (operation_id,))
            if cur.fetchone()[0] != "pending":
                raise RuntimeError("settled twice")
            if withdrawal:
                cur.execute("SELECT status FROM wallet_hold WHERE id = %s FOR UPDATE", (hold_id,))
                cur.fetchone()
                cur.execute("UPDATE wallet_ledgeraccount SET held = held - %s WHERE id = %s", (amount, wallet))
                rows[wallet] = (rows[wallet][0], rows[wallet][1] - amount)
                entry_id = self._post(cur, wallet, bank, amount, rows, kind, now, hold_id=hold_id)
                cur.execute("UPDATE wallet_hold SET status = 'posted', posted_amount = %s, resolved_at = %s "
                            "WHERE id = %s", (amount, now, hold_id))
            else:
                entry_id = self._post(cur, bank, wallet, amount, rows, kind, now)
            cur.execute("UPDATE wallet_bankoperation SET status = 'succeeded', entry_id = %s, gateway_reference = %s, "
                        "settled_at = %s, last_checked_at = %s WHERE id = %s",
                        (entry_id, f"sandbox-{reference}", now, now, operation_id))


if __name__ == "__main__":
    main()
