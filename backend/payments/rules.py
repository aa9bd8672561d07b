"""Pure money rules of the payments app (no database): the red-packet split and the settle-up plan.

Lucky split (verifiable). At send time the server draws a 32-byte seed from ``secrets`` (a CSPRNG) and
publishes ``sha256(seed)`` on the card at once; the seed itself is published when the packet closes. Anyone
can then recompute the split with ``lucky_split(total, count, seed)`` and check that the hash matches: the
parts were fixed before the first grab. The method is the double-mean method in integer fen:

- every part starts at 1 fen; the ``extra = total − count`` fen are then dealt out;
- for part i (of n = count − i still to deal), draw x uniformly from 0 … ⌊2·extra_left / n⌋, give it x;
- the last part takes what is left.

Since ⌊2·extra_left / n⌋ ≤ extra_left for n ≥ 2, no part goes negative: every part ≥ 1 fen and the parts sum
to the total. The uniform draws come from a deterministic stream: block k is ``sha256(seed ‖ k as 8 bytes
big-endian)``, read as a 256-bit big-endian integer; a draw below ``m`` uses rejection sampling (take the
block modulo m unless it falls in the last, incomplete multiple of m, then move to the next block), so it is
unbiased.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

SEED_BYTES = 32
_BLOCK_SPACE = 1 << 256


def new_seed() -> bytes:
    return secrets.token_bytes(SEED_BYTES)


def seed_hash(seed: bytes) -> str:
    return hashlib.sha256(seed).hexdigest()


class _Draws:
    def __init__(self, seed: bytes) -> None:
        self.seed, self.block = seed, 0

    def below(self, m: int) -> int:
        """Uniform in 0 … m − 1."""
        limit = _BLOCK_SPACE - _BLOCK_SPACE % m
        while True:
            value = int.from_bytes(hashlib.sha256(self.seed + self.block.to_bytes(8, "big")).digest(), "big")
            self.block += 1
            if value < limit:
                return value % m


def lucky_split(total: int, count: int, seed: bytes) -> list[int]:
    """The double-mean split of `total` fen into `count` parts, each ≥ 1 fen, determined by `seed`."""
    if count < 1 or total < count:
        raise ValueError("at least one fen per part")
    draws = _Draws(seed)
    extra = total - count
    parts = []
    for i in range(count - 1):
        x = draws.below(2 * extra // (count - i) + 1)
        parts.append(1 + x)
        extra -= x
    parts.append(1 + extra)
    return parts


# --- settle up --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payment:
    debtor: int
    creditor: int
    amount: int


def simplify_debts(balances: dict[int, int]) -> list[Payment]:
    """Splitwise's "simplify debts": payments that clear every net balance (positive = is owed).

    Greedy: the largest debtor pays the largest creditor as much as both allow, repeat. Each payment clears at
    least one member, so there are at most (members with a non-zero balance) − 1 payments; nobody pays who
    is not a net debtor and nobody receives who is not a net creditor. Ties are broken by user id, so the
    plan is deterministic.
    """
    if sum(balances.values()) != 0:
        raise ValueError("balances must sum to zero")
    debts = {uid: -value for uid, value in balances.items() if value < 0}
    credits = {uid: value for uid, value in balances.items() if value > 0}
    plan: list[Payment] = []
    while debts:
        debtor = max(debts, key=lambda uid: (debts[uid], -uid))
        creditor = max(credits, key=lambda uid: (credits[uid], -uid))
        amount = min(debts[debtor], credits[creditor])
        plan.append(Payment(debtor=debtor, creditor=creditor, amount=amount))
        for book, uid in ((debts, debtor), (credits, creditor)):
            book[uid] -= amount
            if book[uid] == 0:
                del book[uid]
    return plan
