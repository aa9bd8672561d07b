"""Loans on PostgreSQL: pledges/s with LENDERS (100) lenders racing for one request, then the time of the daily
scan job over ACTIVE_LOANS (10,000) active loans, and of re-running it the same day.

    DATABASE_URL=postgresql://…/any PYTHONPATH=$PWD .venv/bin/python bench/loans.py
    (BENCH_QUICK=1: 10 lenders, 300 loans; its phases take seconds on an idle machine, plus the migration)

Runs on a scratch PostgreSQL database next to DATABASE_URL, cloned from the migrated template (bench/scratch.py), dropped at the end (also on
Ctrl-C / SIGTERM). Figures (bench/report.py): loans.pledges_per_s, loans.scan_10k_s, loans.scan_rerun_s (the
same names in quick mode, over fewer loans; the detail line says how many).

Pledges: one request of LENDERS × TICKETS tickets; every lender pledges one ticket at a time, TICKETS + 1
times, so the last pledges race for the last tickets and are refused (never over-funded). They run through
loans.services.pledge (the hold, the loan row lock, the chat card, and for the completing pledge the
disbursement: every hold posted to escrow, the schedule written) on WORKERS threads, each with its own
connection out of the per-process pool (DATABASE_POOL_MAX_SIZE, 12): the pool, not the number of lenders,
bounds how many pledges are in flight at once, as in one app server process. So pledges/s is the rate at
which one process serves a crowd of lenders queueing on one loan row — they serialise on that lock anyway.
The ledger must reconcile afterwards.

Scan: the active loans are written in bulk (so that 10,000 take seconds, not an hour of pledging) in the rows a
disbursement leaves — loan, circle, three posted pledges from the bench lenders, the schedule — over
BORROWERS circle members, spread over a realistic day: 70% current (earlier instalments paid), 8% due in 1-3
days (reminder), 4% due today, 12% 1-29 days overdue (penalty accrues), 3% reaching 30 days overdue today
(default: reveal to lenders and circle, audited; blacklist; 公开通报), 3% defaulted 180+ days ago (write-off).
No ledger history is written for them (the scan moves no money; checked: no journal entry appears), so the
ledger check runs before they exist. Then services.scan_loans as the periodic task runs it, and again.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import money  # noqa: E402
from bench.report import figure, quick  # noqa: E402
from bench.scratch import ScratchDatabase, use_scratch_database  # noqa: E402
from bench.turns import measuring  # noqa: E402

LENDERS = int(os.environ.get("BENCH_LENDERS", "10" if quick() else "100"))
TICKETS = int(os.environ.get("BENCH_TICKETS", "2" if quick() else "5"))  # per lender, on the one request
ACTIVE_LOANS = int(os.environ.get("BENCH_ACTIVE_LOANS", "300" if quick() else "10000"))
BORROWERS = int(os.environ.get("BENCH_BORROWERS", "10" if quick() else "200"))
TICKET = 10_000  # fen: loans' default minimum ticket (100 yuan)


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed run still drops its database
    with ScratchDatabase("loans") as scratch_url:  # cloned from the migrated template, dropped on the way out
        use_scratch_database(scratch_url)
        bench()


def bench() -> None:
    import django

    django.setup()
    from django.db import connection

    from backend.celery import app as celery_app

    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_url = "memory://localhost/"  # a host keeps kombu from warning

    from django.conf import settings

    from backend.accounts.models import User
    from backend.circles import services as circles
    from backend.wallet import services as wallet
    from backend.wallet.models import LedgerAccount

    bank = wallet.system_account(LedgerAccount.Kind.EXTERNAL_BANK)

    def person(n: int, *, funded: bool) -> User:
        user = User.objects.create_user(f"+86134{n:08d}", display_name=f"Bench {n}", kyc_level=3)
        if funded:
            account = wallet.ensure_wallet(user_id=user.pk)
            wallet.transfer(source_id=bank.pk, destination_id=account.pk, amount=100_000_000,
                            idempotency_key=f"bench:fund:{account.pk}", kind="top_up")
        return user

    started = time.perf_counter()
    borrower = person(0, funded=True)
    lenders = [person(n, funded=True) for n in range(1, LENDERS + 1)]
    borrowers = [borrower] + [person(LENDERS + n, funded=False) for n in range(1, BORROWERS)]
    circle = circles.create_circle(owner=borrower, kind="alumni", name="Bench")
    for member in lenders + borrowers[1:]:
        circles.join_circle(user=member, circle_id=circle.pk)
    connection.close()
    settings.QUANZI_LOANS = {"LIMIT_FEN_PER_TRUST_POINT": 10**9}  # the bench borrower is new: no limit
    print(f"setup: {LENDERS} lenders, {BORROWERS} borrowers in one circle in {time.perf_counter() - started:.1f} s")

    with measuring():  # quick mode: the machine to itself (bench/turns.py); writing the book is inside (short)
        pledges_phase(borrower, lenders, circle)
        scan_phase(borrowers, lenders, circle)


def pledges_phase(borrower, lenders, circle) -> None:
    from django.conf import settings

    from backend.loans import services
    from backend.loans.models import Loan
    from backend.wallet.selectors import reconcile

    pool_size = settings.DATABASES["default"].get("OPTIONS", {}).get("pool", {}).get("max_size", 12)
    money.THREADS = workers = max(1, min(LENDERS, pool_size - 2))  # the main thread and one spare keep a slot
    loan = services.create_loan_request(borrower=borrower, amount=LENDERS * TICKETS * TICKET, term_months=12,
                                        rate_bp=1000, method="equal_instalment", purpose="bench",
                                        circle_ids=[circle.pk], funding_days=7)
    jobs = [lambda lender=lender, n=n, k=k: services.pledge(lender=lender, loan_id=loan.pk, amount=TICKET,
                                                            idempotency_key=f"bench-pledge-{n:04d}-{k:03d}")
            for k in range(TICKETS + 1) for n, lender in enumerate(lenders)]
    done, refused, elapsed = money.pool(jobs)
    loan.refresh_from_db()
    print(f"pledges: {done} accepted, {refused} refused in {elapsed:.1f} s; {LENDERS} lenders on {workers} "
          f"connections; loan {loan.status}, funded {loan.funded} of {loan.amount}")
    if loan.status != Loan.Status.ACTIVE or loan.funded != loan.amount or done != LENDERS * TICKETS:
        raise SystemExit("the request did not end exactly fully funded")
    report = reconcile()
    if not report.ok:
        raise SystemExit("\n".join(report.problems[:20]))
    figure("loans.pledges_per_s", done / elapsed, "pledges/s", f"{LENDERS} lenders racing, {workers} connections")


def scan_phase(borrowers, lenders, circle) -> None:
    from django.db.models import Count

    from backend.core import clock
    from backend.loans import schedule, services
    from backend.loans.models import Instalment, Loan, LoanCircle, Pledge, RevealAudit
    from backend.wallet import services as wallet
    from backend.wallet.models import Hold, JournalEntry, LedgerAccount

    started = time.perf_counter()
    now = clock.now()
    today = now.date()
    escrow = wallet.system_account(LedgerAccount.Kind.LOAN_ESCROW)
    lender_wallets = {u.pk: wallet.ensure_wallet(user_id=u.pk).pk for u in lenders}
    # per 100 loans: (share, days from today to the first unpaid instalment, instalments already paid, status)
    mix = [(70, None, 2, "active"), (8, "soon", 0, "active"), (4, 0, 0, "active"), (12, "late", 0, "active"),
           (3, -30, 0, "active"), (3, -210, 0, "defaulted")]
    kinds = [entry for entry in mix for _ in range(entry[0])]
    amount, months, rate = 30 * TICKET, 12, 1000
    lines = schedule.build(amount, rate, months, "equal_instalment")
    loans, plans = [], []
    for n in range(ACTIVE_LOANS):
        _, first, paid, status = kinds[n % len(kinds)]
        offset = {None: 4 + n % 25, "soon": 1 + n % 3, "late": -(1 + n % 29)}.get(first, first)
        next_due = today + dt.timedelta(days=offset)
        dates = [schedule.add_months(next_due, k - paid) for k in range(len(lines))]
        disbursed = dt.datetime.combine(dates[0] - dt.timedelta(days=30), dt.time(10), tzinfo=dt.UTC)
        loans.append(Loan(borrower=borrowers[n % len(borrowers)], amount=amount, term_months=months, rate_bp=rate,
                          method="equal_instalment", purpose="bench", pseudonym=f"匿名借款人·b{n:05x}",
                          status=status, funded=amount, funding_deadline=disbursed, created_at=disbursed,
                          disbursed_at=disbursed, was_late=status == "defaulted",
                          defaulted_at=now + dt.timedelta(days=offset + 30) if status == "defaulted" else None))
        plans.append((dates, paid))
    Loan.objects.bulk_create(loans, batch_size=2000)
    LoanCircle.objects.bulk_create([LoanCircle(loan=loan, circle=circle) for loan in loans], batch_size=5000)
    parts = (10 * TICKET, 15 * TICKET, 5 * TICKET)
    holds, pledges = [], []
    for n, loan in enumerate(loans):
        for k, part in enumerate(parts):
            lender = lenders[(3 * n + k) % len(lenders)]
            holds.append(Hold(source_id=lender_wallets[lender.pk], destination_id=escrow.pk, amount=part,
                              posted_amount=part, status=Hold.Status.POSTED, kind="loan_pledge",
                              created_at=loan.disbursed_at, resolved_at=loan.disbursed_at))
            pledges.append(Pledge(loan=loan, lender=lender, amount=part, status=Pledge.Status.POSTED,
                                  idempotency_key=f"bench-book-{n}-{k}", created_at=loan.disbursed_at))
    Hold.objects.bulk_create(holds, batch_size=5000)
    for pledge, hold in zip(pledges, holds, strict=True):
        pledge.hold = hold
    Pledge.objects.bulk_create(pledges, batch_size=5000)
    instalments = []
    for loan, (dates, paid) in zip(loans, plans, strict=True):
        for line, day in zip(lines, dates, strict=True):
            done = line.number <= paid
            instalments.append(Instalment(
                loan=loan, number=line.number, due_date=day, principal=line.principal, interest=line.interest,
                paid_principal=line.principal if done else 0, paid_interest=line.interest if done else 0,
                reminded_before=done, reminded_due=done,
                paid_at=dt.datetime.combine(day, dt.time(9), tzinfo=dt.UTC) if done else None))
    Instalment.objects.bulk_create(instalments, batch_size=10_000)
    active = Loan.objects.filter(status__in=(Loan.Status.ACTIVE, Loan.Status.DEFAULTED)).count()
    print(f"book: {len(loans)} disbursed loans ({active} active or defaulted in all) written in "
          f"{time.perf_counter() - started:.1f} s")

    entries = JournalEntry.objects.count()
    started = time.perf_counter()
    changed = services.scan_loans(today=today, limit=active + 10)
    first_run = time.perf_counter() - started
    started = time.perf_counter()
    again = services.scan_loans(today=today, limit=active + 10)
    rerun = time.perf_counter() - started
    by_status = dict(Loan.objects.values_list("status").annotate(n=Count("id")).order_by("status"))
    print(f"scan: {active} loans in {first_run:.1f} s ({changed} changed: {by_status}, "
          f"{RevealAudit.objects.count()} reveals); same day again {rerun:.1f} s ({again} changed)")
    if again or JournalEntry.objects.count() != entries:
        raise SystemExit("the scan is not idempotent, or it moved money")
    figure("loans.scan_10k_s", first_run, "s", f"{active} active loans (10,000 in a full run)")
    figure("loans.scan_rerun_s", rerun, "s", "same day again: nothing to do")


if __name__ == "__main__":
    main()
