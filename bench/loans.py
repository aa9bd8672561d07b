"""Loans on PostgreSQL: pledges/s with LENDERS (100) lenders racing on one request, and the time of one
arrears scan over ACTIVE_LOANS (10,000) active loans.

    .venv/bin/python bench/loans.py            (from the repository root; BENCH_ACTIVE_LOANS=1000 for a quick run)

Creates a scratch PostgreSQL database next to DATABASE_URL, migrates it, drops it at the end. Pledges go
through loans.services.pledge (holds, the loan row lock, the disbursement of the completing pledge). The active
loans for the scan are written in bulk (rows as a disbursement leaves them: a loan, its circle, its
instalments), not through the ledger, so the scan's cost is measured alone; a third of them are overdue so the
scan accrues penalties and defaults some. Prints figures; asserts only that the ledger reconciles.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ledger import admin_sql, scratch_database, use_scratch_database  # noqa: E402
from bench.money import pool  # noqa: E402

LENDERS = int(os.environ.get("BENCH_LENDERS", "100"))
ACTIVE_LOANS = int(os.environ.get("BENCH_ACTIVE_LOANS", "10000"))


def main() -> None:
    admin_url, scratch_url, name = scratch_database()
    name = name.replace("ledger", "loans")
    scratch_url = scratch_url.replace("quanzi_bench_ledger_", "quanzi_bench_loans_")
    use_scratch_database(scratch_url)
    admin_sql(admin_url, f'CREATE DATABASE "{name}"')
    try:
        bench()
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001 - settings refused to load: nothing to close, still drop the database
            pass
        admin_sql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench() -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from backend.celery import app as celery_app

    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_url = "memory://localhost/"  # a host keeps kombu from warning
    call_command("migrate", verbosity=0)

    from backend.accounts.models import User
    from backend.circles import services as circles
    from backend.core import clock
    from backend.loans import schedule, services
    from backend.loans.models import Instalment, Loan, LoanCircle
    from backend.wallet import services as wallet
    from backend.wallet.models import LedgerAccount
    from backend.wallet.selectors import reconcile

    bank = wallet.system_account(LedgerAccount.Kind.EXTERNAL_BANK)

    def person(n: int) -> User:
        user = User.objects.create_user(f"+86134{n:08d}", display_name=f"Bench {n}", kyc_level=3)
        account = wallet.ensure_wallet(user_id=user.pk)
        wallet.transfer(source_id=bank.pk, destination_id=account.pk, amount=100_000_000,
                        idempotency_key=f"bench:fund:{account.pk}", kind="top_up")
        return user

    borrower = person(0)
    lenders = [person(n) for n in range(1, LENDERS + 1)]
    circle = circles.create_circle(owner=borrower, kind="alumni", name="Bench")
    for lender in lenders:
        circles.join_circle(user=lender, circle_id=circle.pk)
    connection.close()

    # --- pledges: every lender pledges one ticket at a time to one big request until it is full ----------
    from django.conf import settings

    settings.QUANZI_LOANS = {"LIMIT_FEN_PER_TRUST_POINT": 10**9}  # the bench borrower is new: no limit
    loan = services.create_loan_request(borrower=borrower, amount=LENDERS * 20 * 10_000, term_months=12,
                                        rate_bp=1000, method="equal_instalment", purpose="bench",
                                        circle_ids=[circle.pk], funding_days=7)
    jobs = [lambda lender=lender, n=n: services.pledge(lender=lender, loan_id=loan.pk, amount=10_000,
                                                       idempotency_key=f"bench-pledge-{n:06d}")
            for n, lender in enumerate(lenders * 20)]
    done, refused, elapsed = pool(jobs)
    loan.refresh_from_db()
    print(f"pledges: {done} in {elapsed:.1f} s = {done / elapsed:.1f}/s with {LENDERS} lenders on one request "
          f"({refused} refused); status {loan.status}")

    # --- the scan over ACTIVE_LOANS active loans -------------------------------------------------------
    today = clock.now().date()
    start = today - dt.timedelta(days=60)
    rows = [Loan(borrower=borrower, amount=100_000, term_months=6, rate_bp=900, method="equal_principal",
                 purpose="bench", pseudonym=f"bench-{n}", status=Loan.Status.ACTIVE, funded=100_000,
                 funding_deadline=clock.now(), disbursed_at=clock.now() - dt.timedelta(days=60))
            for n in range(ACTIVE_LOANS)]
    Loan.objects.bulk_create(rows, batch_size=2000)
    LoanCircle.objects.bulk_create([LoanCircle(loan=r, circle=circle) for r in rows], batch_size=2000)
    lines = schedule.build(100_000, 900, 6, "equal_principal")
    instalments = []
    for n, row in enumerate(rows):
        first_due = start + dt.timedelta(days=30) if n % 3 == 0 else today + dt.timedelta(days=2)
        for line in lines:
            instalments.append(Instalment(loan=row, number=line.number, principal=line.principal,
                                          interest=line.interest,
                                          due_date=schedule.add_months(first_due, line.number - 1)))
    Instalment.objects.bulk_create(instalments, batch_size=5000)
    started = time.perf_counter()
    changed = services.scan_loans(today=today, limit=ACTIVE_LOANS + 10)
    elapsed = time.perf_counter() - started
    print(f"scan: {ACTIVE_LOANS + 1} active loans in {elapsed:.1f} s ({changed} changed); rerun:", end=" ")
    started = time.perf_counter()
    again = services.scan_loans(today=today, limit=ACTIVE_LOANS + 10)
    print(f"{time.perf_counter() - started:.1f} s ({again} changed)")
    report = reconcile()
    print(f"ledger reconciles: {report.ok}")
    if not report.ok:
        raise SystemExit("\n".join(report.problems[:20]))


if __name__ == "__main__":
    main()
