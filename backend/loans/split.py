"""Splitting a repayment among a loan's lenders, pro rata to their pledges, so each lender's *cumulative*
receipts stay within 1 fen of their exact share of everything repaid so far.

Each repayment splits the new cumulative total with the largest-remainder rule (backend/core/money.py) and
pays each lender the difference from what they already received. That difference can come out at -1 fen in a
rare case (the Alabama paradox of the largest-remainder method, with a repayment smaller than a fen per
lender); such a part is paid as 0 and the fen is taken from the lender(s) furthest ahead of their exact share,
so the parts of every repayment still sum exactly to it and no part is negative. The 1-fen bound therefore holds
whenever each repayment is worth at least 1 fen to every lender (always, for real repayments); with sub-fen
repayments receipts stay within 2 fen (tests/loans/test_schedule.py checks both with Hypothesis).
"""

from __future__ import annotations

from fractions import Fraction

from backend.core.money import split_by_weights


def lender_shares(*, amount: int, weights: list[int], received: list[int]) -> list[int]:
    """This repayment's part for each lender (same order as `weights` and `received`)."""
    if amount < 0 or len(weights) != len(received):
        raise ValueError("a non-negative amount and one received figure per weight")
    target = split_by_weights(sum(received) + amount, weights)
    parts = [t - r for t, r in zip(target, received, strict=True)]
    owed = -sum(p for p in parts if p < 0)
    parts = [max(0, p) for p in parts]
    total, whole = sum(received) + amount, sum(weights)
    while owed:
        # take back from the lender whose receipts would be furthest above their exact share
        ahead = max((i for i in range(len(parts)) if parts[i] > 0),
                    key=lambda i: received[i] + parts[i] - Fraction(total * weights[i], whole))
        parts[ahead] -= 1
        owed -= 1
    return parts
