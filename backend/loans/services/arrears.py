"""The daily loan scan (idempotent; `manage.py run_due_jobs --at <date>` runs it as of a date): reminders
before and on due dates, penalty interest after the grace period, default (the identity revealed to the lenders
and the circles, the blacklist, an audit row per reveal) and write-off."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from backend.accounts.ids import user_gid
from backend.circles import services as circles
from backend.core import clock
from backend.wallet.money import format_fen

from .. import schedule
from ..limits import loans_setting
from ..models import Instalment, Loan, RevealAudit
from ._common import circle_ids_of, lender_ids, lock_loan, tell
from .cards import refresh_loan_cards

BUCKETS = ((1, 30, "1-30"), (31, 90, "31-90"), (91, None, "90+"))


def bucket(days_overdue: int) -> str | None:
    """The arrears bucket of a loan whose oldest unpaid instalment is this many days overdue."""
    for low, high, name in BUCKETS:
        if days_overdue >= low and (high is None or days_overdue <= high):
            return name
    return None


def days_overdue(loan: Loan, today: dt.date) -> int:
    oldest = loan.instalments.filter(paid_at__isnull=True, due_date__lt=today).order_by("number").first()
    return (today - oldest.due_date).days if oldest else 0


def penalty_rate_bp(loan: Loan) -> int:
    return min(loan.rate_bp * loans_setting("PENALTY_MULTIPLIER_PCT") // 100, loans_setting("PENALTY_CAP_BP"))


def scan_loans(*, today: dt.date | None = None, limit: int = 10_000) -> int:
    """Run every loan's due work as of `today`; returns how many loans changed. Safe to run twice.

    Only loans that can have work are locked and looked at: defaulted ones (penalties, write-off) and active ones
    with an unpaid instalment due within the reminder window or earlier (reminders, penalties, default). An
    active loan whose next instalment is further off has nothing to do today, so most of a healthy book costs
    one indexed query, not a transaction each."""
    today = today or clock.now().date()
    horizon = today + dt.timedelta(days=loans_setting("REMIND_DAYS_BEFORE"))
    due = Instalment.objects.filter(loan=OuterRef("pk"), paid_at__isnull=True, due_date__lte=horizon)
    ids = list(Loan.objects.filter(Q(status=Loan.Status.DEFAULTED) | Q(status=Loan.Status.ACTIVE) & Exists(due))
               .order_by("id").values_list("pk", flat=True)[:limit])
    return sum(_scan_one(loan_id, today) for loan_id in ids)


def _scan_one(loan_id: int, today: dt.date) -> bool:
    with transaction.atomic():
        loan = lock_loan(loan_id)
        changed = False
        if loan.status == Loan.Status.ACTIVE:
            changed |= _remind(loan, today)
            changed |= _accrue_penalties(loan, today)
            if days_overdue(loan, today) >= loans_setting("DEFAULT_AFTER_DAYS"):
                default_loan(loan)
                changed = True
        elif loan.status == Loan.Status.DEFAULTED:
            changed |= _accrue_penalties(loan, today)
            if loan.defaulted_at.date() + dt.timedelta(days=loans_setting("WRITE_OFF_AFTER_DAYS")) <= today:
                loan.status, loan.written_off_at = Loan.Status.WRITTEN_OFF, clock.now()
                loan.save(update_fields=["status", "written_off_at"])
                refresh_loan_cards(loan)
                tell(lender_ids(loan), loan=loan, event="loans.written_off", title="借款已核销",
                     body="违约借款已核销；若借款人日后还款，回款仍会分配给你。")
                changed = True
        return changed


def _remind(loan: Loan, today: dt.date) -> bool:
    changed = False
    ahead = dt.timedelta(days=loans_setting("REMIND_DAYS_BEFORE"))
    for inst in loan.instalments.filter(paid_at__isnull=True, due_date__gte=today).order_by("number")[:1]:
        if inst.due_date == today and not inst.reminded_due:
            inst.reminded_due = inst.reminded_before = True
            tell([loan.borrower_id], loan=loan, event="loans.due_today", title="今日还款日",
                 body=f"第 {inst.number} 期应还 {format_fen(inst.due)}，请于今日还款。")
        elif inst.due_date - ahead <= today < inst.due_date and not inst.reminded_before:
            inst.reminded_before = True
            tell([loan.borrower_id], loan=loan, event="loans.due_soon", title="还款提醒",
                 body=f"第 {inst.number} 期 {format_fen(inst.due)} 将于 {inst.due_date.isoformat()} 到期。")
        else:
            continue
        inst.save(update_fields=["reminded_before", "reminded_due"])
        changed = True
    return changed


def _accrue_penalties(loan: Loan, today: dt.date) -> bool:
    """Simple penalty interest per day on each overdue instalment's unpaid principal + interest, counted from
    the end of the grace period up to `today` (penalty_through remembers how far it has been counted)."""
    grace, rate, changed = loans_setting("GRACE_DAYS"), penalty_rate_bp(loan), False
    for inst in Instalment.objects.select_for_update().filter(loan=loan, paid_at__isnull=True,
                                                               due_date__lt=today - dt.timedelta(days=grace)):
        start = max(inst.penalty_through or inst.due_date, inst.due_date + dt.timedelta(days=grace))
        days = (today - start).days
        if days <= 0:
            continue
        base = (inst.principal - inst.paid_principal) + (inst.interest - inst.paid_interest - inst.waived_interest)
        inst.penalty += schedule.fen(Decimal(base) * rate * days / Decimal(3_650_000))
        inst.penalty_through = today
        inst.save(update_fields=["penalty", "penalty_through"])
        if not loan.was_late:
            loan.was_late = True
            loan.save(update_fields=["was_late"])
            tell([loan.borrower_id], loan=loan, event="loans.overdue", title="借款已逾期",
                 body="你的借款已逾期并开始计收罚息，请尽快还款。")
        changed = True
    return changed


def default_loan(loan: Loan) -> None:
    """Default (loan locked): reveal the borrower to the lenders and the circles the request was shown in,
    blacklist them (which posts the 公开通报 in each circle chat), and audit every reveal."""
    now, borrower = clock.now(), loan.borrower
    loan.status, loan.defaulted_at = Loan.Status.DEFAULTED, now
    loan.save(update_fields=["status", "defaulted_at"])
    refresh_loan_cards(loan)
    circle_ids = circle_ids_of(loan)
    lenders = lender_ids(loan)
    for lender_id in lenders:
        RevealAudit.objects.get_or_create(loan=loan, to_user_id=lender_id,
                                          defaults={"revealed_user": borrower, "revealed_at": now})
    entry = circles.blacklist_for_default(user=borrower, loan_ref=loan.ref, circles=circle_ids,
                                          reason="Loan default")
    for circle in entry.circles.filter(pk__in=circle_ids).order_by("id"):
        RevealAudit.objects.get_or_create(loan=loan, to_circle=circle,
                                          defaults={"revealed_user": borrower, "revealed_at": now})
    circles.record_loan_outcome(user_id=borrower.pk, circle_ids=circle_ids, loan_ref=loan.ref, outcome="defaulted")
    tell(lenders, loan=loan, event="loans.defaulted", title="借款违约公示",
         body=f"{loan.pseudonym} 的借款已违约，借款人为 {borrower.display_name}。",
         borrower_id=user_gid(borrower.pk), borrower_name=borrower.display_name)
    tell([borrower.pk], loan=loan, event="loans.defaulted_borrower", title="借款已违约",
         body="你的借款逾期已达违约期限：你的身份已告知出借人与相关圈子，并被列入黑名单。")
