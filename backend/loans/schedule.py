"""Repayment schedules in integer fen (pure functions, no database).

Exact amounts are computed in Decimal; each instalment is rounded half-even once. Principal is rounded on the
*cumulative* exact principal (part k = round(cum_k) - round(cum_k-1)), so every part is within 1 fen of the
exact one and the parts add up to the principal exactly — the last instalment absorbs what is left. Interest
is the exact interest of each period rounded half-even — or, when both roundings leaned the same way, the other
way — so principal, interest and the instalment's total are each within 1 fen of the exact figures. For 等额本息 the exact figures are the annuity's (numpy-financial's
pmt/ipmt/ppmt agree within 1 fen per instalment, tests/loans/test_schedule.py).
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, getcontext

getcontext().prec = 50

EQUAL_INSTALMENT, EQUAL_PRINCIPAL, BULLET = "equal_instalment", "equal_principal", "bullet"


@dataclass(frozen=True)
class Line:
    number: int
    principal: int
    interest: int

    @property
    def total(self) -> int:
        return self.principal + self.interest


def fen(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def monthly_rate(rate_bp: int) -> Decimal:
    return Decimal(rate_bp) / Decimal(120_000)


def _from_exact(principals: list[Decimal], interests: list[Decimal]) -> list[Line]:
    lines, cumulative, before = [], Decimal(0), 0
    for number, (p, i) in enumerate(zip(principals, interests, strict=True), start=1):
        cumulative += p
        after = fen(cumulative)
        principal, interest = after - before, fen(i)
        if abs(principal + interest - (p + i)) > 1:
            # the two roundings leaned the same way: round the interest the other way (still within 1 fen),
            # so the instalment's total stays within 1 fen of the exact one too
            interest = int(i.to_integral_value(rounding=ROUND_FLOOR if interest > i else ROUND_CEILING))
        lines.append(Line(number=number, principal=principal, interest=interest))
        before = after
    return lines


def build(principal: int, rate_bp: int, months: int, method: str) -> list[Line]:
    """The instalments of a loan of `principal` fen over `months` at `rate_bp` a year."""
    if principal <= 0 or months <= 0 or rate_bp < 0:
        raise ValueError("a positive principal and term, a non-negative rate")
    r, amount = monthly_rate(rate_bp), Decimal(principal)
    if method == BULLET:
        return [Line(number=1, principal=principal, interest=fen(amount * r * months))]
    principals, interests, balance = [], [], amount
    if method == EQUAL_INSTALMENT:
        payment = amount / months if r == 0 else amount * r / (1 - (1 + r) ** -months)
        for _ in range(months):
            interest = balance * r
            principals.append(payment - interest)
            interests.append(interest)
            balance -= payment - interest
    elif method == EQUAL_PRINCIPAL:
        for _ in range(months):
            interests.append(balance * r)
            principals.append(amount / months)
            balance -= amount / months
    else:
        raise ValueError(f"unknown method {method!r}")
    principals[-1] += balance  # the exact residue (tiny) so the cumulative ends at the principal exactly
    return _from_exact(principals, interests)


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day `months` later, clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def due_dates(start: dt.date, count: int, *, months_apart: int = 1) -> list[dt.date]:
    return [add_months(start, months_apart * k) for k in range(1, count + 1)]
