"""Splitting an amount of integer fen into parts: one rule for AA bills and red packets, one for running totals
paid out over time (loan repayments among lenders: ``split_onwards``).

``split_by_weights`` is the largest-remainder method (Hamilton): each part first gets the floor of its exact
share, then the fen left over go one each to the parts with the largest remainders. Ties are broken by
position: the earlier part in the given order wins. Callers pass parts in a stable, documented order (the
payments app orders participants by user id), so the same bill always splits the same way.
The parts always add up to the total exactly. A part may be 0 when its weight is tiny; callers that need
every part ≥ 1 fen check ``min(parts)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction


def split_by_weights(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` fen in proportion to positive integer `weights` (largest remainder, earlier wins ties)."""
    if total < 0 or not weights or any(w <= 0 for w in weights):
        raise ValueError("a non-negative total and positive weights")
    whole = sum(weights)
    parts = [total * w // whole for w in weights]
    remainders = [total * w % whole for w in weights]
    left = total - sum(parts)
    # Sort by remainder, largest first; Python's sort is stable, so equal remainders keep their order.
    for index in sorted(range(len(weights)), key=lambda i: -remainders[i])[:left]:
        parts[index] += 1
    return parts


def split_equally(total: int, count: int) -> list[int]:
    """`count` parts differing by at most 1 fen; the extra fen go to the first parts."""
    return split_by_weights(total, [1] * count)


def split_onwards(amount: int, weights: Sequence[int], received: Sequence[int]) -> list[int]:
    """Split `amount` fen of a running total among parts that already `received` some, so that every part's
    cumulative receipts c_i stay within quota after every call: floor(s_i·T) ≤ c_i ≤ ceil(s_i·T), where
    s_i = w_i / Σw and T is the new cumulative total. Parts never go down (money paid is not taken back), the
    parts of each call sum to `amount` exactly, and no part is negative. So each cumulative receipt is always
    less than 1 fen from its exact share, however small the amounts (a house-monotone quota method,
    Balinski–Young; the largest-remainder rule cannot do this: the Alabama paradox).

    The rule: raise every part to its lower quota floor(s_i·T), then give each fen still left to the part
    whose *next* fen falls due soonest — the smallest (c_i + 1) / w_i, earlier part on ties — among the parts
    still under their upper quota (at most one fen each). Why it never gets stuck: read fen k of part i as a
    unit job that may be paid once ceil(s_i·T) ≥ k (its release) and must be paid by the time floor(s_i·T) ≥ k
    (its deadline). Some payment order meeting every deadline exists (over any window of totals (a, b] at most
    Σ(floor(s_i·b) − ceil(s_i·a)) ≤ b − a jobs are both released and due), earliest-deadline-first loses
    nothing against it (swap argument; Σceil(s_i·T) ≥ T jobs are always released, enough for every fen), and
    this rule is earliest-deadline-first over each batch of fen. So
    the lower quotas of the next total never add up to more than it. Received figures that did not come from
    this rule can break that; then the amount goes to the parts below their lower quota, in proportion to
    how far below (none is overpaid, none is negative).
    """
    if amount < 0 or not weights or len(weights) != len(received) or any(w <= 0 for w in weights) \
            or any(r < 0 for r in received):
        raise ValueError("a non-negative amount, positive weights and one non-negative received per weight")
    whole, total = sum(weights), sum(received) + amount
    lower = [total * w // whole for w in weights]
    after = [max(r, q) for r, q in zip(received, lower, strict=True)]
    left = total - sum(after)
    if left < 0:  # not a state this rule leaves: do the least harm
        needs = [q - r if q > r else 0 for r, q in zip(received, lower, strict=True)]
        needy = [i for i, need in enumerate(needs) if need]
        parts = [0] * len(weights)
        for i, part in zip(needy, split_by_weights(amount, [needs[i] for i in needy]), strict=True):
            parts[i] = part
        return parts
    eligible = [i for i, w in enumerate(weights) if after[i] * whole < total * w]  # c_i < s_i·T: under ceil
    eligible.sort(key=lambda i: (Fraction(after[i] + 1, weights[i]), i))
    assert left <= len(eligible), "the quota rule always has room (see the docstring)"
    for i in eligible[:left]:
        after[i] += 1
    return [a - r for a, r in zip(after, received, strict=True)]
