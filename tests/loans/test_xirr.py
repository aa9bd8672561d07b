"""XIRR (bisection) against a closed form and an independent Newton iteration (scipy is not installed)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from backend.loans.xirr import xirr

DAY0 = dt.date(2026, 1, 1)


def newton(flows, guess=0.1):
    rate = guess
    for _ in range(100):
        f = sum(a / (1 + rate) ** ((d - DAY0).days / 365) for d, a in flows)
        df = sum(-(d - DAY0).days / 365 * a / (1 + rate) ** ((d - DAY0).days / 365 + 1) for d, a in flows)
        step = f / df
        rate -= step
        if abs(step) < 1e-12:
            break
    return rate


def test_one_year_ten_percent_and_no_return_yet():
    assert abs(xirr([(DAY0, -10_000), (DAY0 + dt.timedelta(days=365), 11_000)]) - 0.10) < 1e-7
    assert xirr([(DAY0, -10_000)]) is None


@given(rate=st.floats(0.0, 0.3), months=st.integers(1, 24), principal=st.integers(10_000, 10**7))
@settings(max_examples=60, deadline=None)
def test_instalment_flows_agree_with_newton(rate, months, principal):
    monthly = principal / months * (1 + rate / 2)
    flows = [(DAY0, -principal)] + [(DAY0 + dt.timedelta(days=30 * k), round(monthly)) for k in range(1, months + 1)]
    assert abs(xirr(flows) - newton(flows)) < 1e-6
