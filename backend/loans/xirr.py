"""XIRR: the annual rate r at which a lender's dated cash flows have zero present value (actual/365), found by
bisection on r in (-99.99%, 1000%). Pure; tests check it against an independent Newton iteration."""

from __future__ import annotations

import datetime as dt


def npv(rate: float, flows: list[tuple[dt.date, int]]) -> float:
    start = min(day for day, _ in flows)
    return sum(amount / (1 + rate) ** ((day - start).days / 365) for day, amount in flows)


def xirr(flows: list[tuple[dt.date, int]], *, tolerance: float = 1e-9) -> float | None:
    """None when there is no sign change (no money back yet, or nothing lent)."""
    if not flows or all(a >= 0 for _, a in flows) or all(a <= 0 for _, a in flows):
        return None
    low, high = -0.9999, 10.0
    f_low, f_high = npv(low, flows), npv(high, flows)
    if f_low * f_high > 0:
        return None
    for _ in range(200):
        mid = (low + high) / 2
        f_mid = npv(mid, flows)
        if abs(f_mid) < tolerance or high - low < tolerance:
            return mid
        if f_low * f_mid < 0:
            high = mid
        else:
            low, f_low = mid, f_mid
    return (low + high) / 2
