"""Reads of the loans app, scoped to the asking user: borrowers see their own loans; lenders see requests shown
in a circle they belong to, through the anonymised view (loans.views); staff see arrears and the reveal audit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef, QuerySet

from backend.circles.models import CircleMember
from backend.core import clock

from .models import LenderReceipt, Loan, LoanCircle, Pledge, RevealAudit
from .services.arrears import bucket, days_overdue
from .xirr import xirr


def my_loans(user_id: int) -> QuerySet[Loan]:
    return Loan.objects.filter(borrower_id=user_id).order_by("-id")


def loans_visible_to(user_id: int) -> QuerySet[Loan]:
    """Requests and loans shown in at least one circle the user is an active member of."""
    seat = CircleMember.objects.filter(user_id=user_id, left_at__isnull=True, circle_id=OuterRef("circle_id"))
    shown = LoanCircle.objects.filter(loan=OuterRef("pk")).filter(Exists(seat))
    return Loan.objects.filter(Exists(shown)).order_by("-id")


def open_requests_for(user_id: int) -> QuerySet[Loan]:
    return loans_visible_to(user_id).filter(status=Loan.Status.FUNDING, funding_deadline__gt=clock.now()) \
        .exclude(borrower_id=user_id)


def my_pledges(user_id: int) -> QuerySet[Pledge]:
    return Pledge.objects.filter(lender_id=user_id).select_related("loan").order_by("-id")


def shared_circle_id(loan: Loan, viewer_id: int) -> int | None:
    """The first (lowest id) circle of the request the viewer belongs to: the trust profile shown is there."""
    return (LoanCircle.objects.filter(loan=loan, circle__members__user_id=viewer_id,
                                      circle__members__left_at__isnull=True)
            .order_by("circle_id").values_list("circle_id", flat=True).first())


@dataclass(frozen=True)
class Portfolio:
    pledged: int
    outstanding_principal: int
    expected: int
    received: int
    boost_received: int
    realised_xirr: float | None
    exposure: list[tuple[int, str, int]]  # (circle id, circle name, outstanding principal)


def portfolio(user_id: int) -> Portfolio:
    """Expected (scheduled principal + interest on the lender's share) vs received; realised XIRR of the cash
    flows so far (pledge out at disbursement, receipts and boosts in); outstanding exposure per circle."""
    pledges = list(Pledge.objects.filter(lender_id=user_id, status=Pledge.Status.POSTED).select_related("loan"))
    expected = received = boost = outstanding = 0
    flows: list[tuple[dt.date, int]] = []
    exposure: dict[int, list] = {}
    for p in pledges:
        loan = p.loan
        lines = list(loan.instalments.all())
        scheduled = sum(i.principal + i.interest - i.waived_interest for i in lines)
        expected += scheduled * p.amount // loan.amount
        received += p.received
        boost += p.boost_received
        principal_left = sum(i.principal - i.paid_principal for i in lines) * p.amount // loan.amount
        if loan.status in (Loan.Status.ACTIVE, Loan.Status.DEFAULTED):
            outstanding += principal_left
            for shown in loan.shown_in.select_related("circle").order_by("circle_id"):
                row = exposure.setdefault(shown.circle_id, [shown.circle.name, 0])
                row[1] += principal_left
        flows.append((loan.disbursed_at.date(), -p.amount))
        for r in LenderReceipt.objects.filter(pledge=p).select_related("repayment"):
            flows.append((r.created_at.date(), r.amount + r.boost))
    return Portfolio(pledged=sum(p.amount for p in pledges), outstanding_principal=outstanding, expected=expected,
                     received=received, boost_received=boost, realised_xirr=xirr(flows),
                     exposure=[(cid, name, amount) for cid, (name, amount) in sorted(exposure.items())])


@dataclass(frozen=True)
class ArrearsRow:
    loan: Loan
    days_overdue: int
    bucket: str
    outstanding: int


def arrears(today: dt.date | None = None) -> list[ArrearsRow]:
    """Staff: loans with an overdue instalment, oldest arrears first."""
    today = today or clock.now().date()
    rows = []
    for loan in Loan.objects.filter(status__in=(Loan.Status.ACTIVE, Loan.Status.DEFAULTED, Loan.Status.WRITTEN_OFF),
                                    instalments__due_date__lt=today, instalments__paid_at__isnull=True).distinct():
        days = days_overdue(loan, today)
        rows.append(ArrearsRow(loan=loan, days_overdue=days, bucket=bucket(days) or "",
                               outstanding=sum(i.due for i in loan.instalments.filter(paid_at__isnull=True))))
    return sorted(rows, key=lambda r: -r.days_overdue)


def reveals() -> QuerySet[RevealAudit]:
    """Staff: every audited reveal of a defaulted borrower's identity, newest first."""
    return RevealAudit.objects.select_related("loan", "revealed_user", "to_user", "to_circle").order_by("-id")


def loans_repaid_counts(user_ids: Sequence[int]) -> dict[int, int]:
    """Loans each borrower repaid in full without ever defaulting: the `loans_repaid` customer measure
    (core.customer_metrics), which the advisors app's tier rules read."""
    rows = (Loan.objects.filter(borrower_id__in=list(user_ids), status=Loan.Status.REPAID, defaulted_at__isnull=True)
            .values("borrower_id").annotate(n=Count("id")).values_list("borrower_id", "n"))
    return dict(rows)
