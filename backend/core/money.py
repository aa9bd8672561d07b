"""Splitting an amount of integer fen into parts: one rule for AA bills, red packets and (later) loans.

``split_by_weights`` is the largest-remainder method (Hamilton): each part first gets the floor of its exact
share, then the fen left over go one each to the parts with the largest remainders. Ties are broken by
position: the earlier part in the given order wins. Callers pass parts in a stable, documented order (the
payments app orders participants by user id), so the same bill always splits the same way.
The parts always add up to the total exactly. A part may be 0 when its weight is tiny; callers that need
every part ≥ 1 fen check ``min(parts)``.
"""

from __future__ import annotations

from collections.abc import Sequence


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
