"""Provably fair draws, pure functions anyone can rerun (docs/campaigns.md has the recipe).

A campaign's seed is 64 hex characters from `secrets`; its SHA-256 (of the seed's ASCII text) is public from the
start, the seed itself once the campaign ends. A draw's roll is

    roll = int.from_bytes(HMAC-SHA256(key=seed ASCII, msg=f"{campaign_id}:{draw_id}"), "big") % total_weight

and the odds table (prize id, weight), in prize id order followed by ("no prize", no_prize_weight), is walked
in integer arithmetic: the first line whose running sum exceeds the roll is the slot. (The modulo bias is
below total_weight / 2**256: nil.)
"""

from __future__ import annotations

import hashlib
import hmac

Odds = list[tuple[int | None, int]]  # (prize id or None for "no prize", weight)


def seed_hash(seed: str) -> str:
    return hashlib.sha256(seed.encode("ascii")).hexdigest()


def roll(*, seed: str, campaign_id: int, draw_id: int, total_weight: int) -> int:
    digest = hmac.new(seed.encode("ascii"), f"{campaign_id}:{draw_id}".encode("ascii"), hashlib.sha256).digest()
    return int.from_bytes(digest, "big") % total_weight


def slot(value: int, odds: Odds) -> int | None:
    """The prize id (None: no prize) the roll lands on."""
    running = 0
    for prize_id, weight in odds:
        running += weight
        if value < running:
            return prize_id
    raise ValueError("roll outside the odds table")


def outcome(*, seed: str, campaign_id: int, draw_id: int, odds: Odds) -> tuple[int, int | None]:
    """(roll, slot prize id) of one draw."""
    total = sum(weight for _, weight in odds)
    value = roll(seed=seed, campaign_id=campaign_id, draw_id=draw_id, total_weight=total)
    return value, slot(value, odds)
