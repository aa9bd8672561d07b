"""Schedules agree with numpy-financial and add up exactly (Hypothesis); pro-rata splits: tests/loans/test_split.py."""

from __future__ import annotations

import numpy_financial as npf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.loans import schedule


@pytest.mark.parametrize(("principal", "rate_bp", "months"), [
    (300_000, 1000, 12), (1_000_000, 1200, 60), (10_000, 1, 1), (123_456_700, 875, 37), (500_000, 0, 6)])
def test_equal_instalments_match_numpy_financial_within_a_fen(principal, rate_bp, months):
    lines = schedule.build(principal, rate_bp, months, schedule.EQUAL_INSTALMENT)
    r = rate_bp / 120_000
    assert len(lines) == months
    assert sum(line.principal for line in lines) == principal
    for line in lines:
        if r:
            ipmt = -float(npf.ipmt(r, line.number, months, principal))
            ppmt = -float(npf.ppmt(r, line.number, months, principal))
            pmt = -float(npf.pmt(r, months, principal))
        else:
            ipmt, ppmt = 0.0, principal / months
            pmt = ppmt
        assert abs(line.interest - ipmt) <= 1
        assert abs(line.principal - ppmt) <= 1
        assert abs(line.total - pmt) <= 1


@given(principal=st.integers(1, 10**9), rate_bp=st.integers(0, 1200), months=st.integers(1, 60),
       method=st.sampled_from([schedule.EQUAL_INSTALMENT, schedule.EQUAL_PRINCIPAL, schedule.BULLET]))
@settings(max_examples=150, deadline=None)
def test_every_schedule_repays_the_principal_exactly(principal, rate_bp, months, method):
    lines = schedule.build(principal, rate_bp, months, method)
    assert sum(line.principal for line in lines) == principal
    assert all(line.principal >= 0 and line.interest >= 0 for line in lines)
    if method == schedule.EQUAL_PRINCIPAL:
        assert max(line.principal for line in lines) - min(line.principal for line in lines) <= 1


def test_equal_principal_interest_falls_and_bullet_is_one_payment():
    lines = schedule.build(120_000, 1200, 12, schedule.EQUAL_PRINCIPAL)
    assert [line.principal for line in lines] == [10_000] * 12
    assert [line.interest for line in lines] == [1200 - 100 * k for k in range(12)]
    (only,) = schedule.build(120_000, 1200, 12, schedule.BULLET)
    assert (only.principal, only.interest) == (120_000, 14_400)
