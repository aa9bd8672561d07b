"""What a lender may learn about a borrower before a default: the trust profile in a shared circle, bucketed so
two loans of one borrower cannot be linked by exact figures (no name, phone, avatar, user id, exact times)."""

from __future__ import annotations

from dataclasses import dataclass

from backend.circles import selectors as circles


def _band(value: int, edges: tuple[int, ...], labels: tuple[str, ...]) -> str:
    for edge, label in zip(edges, labels, strict=False):
        if value < edge:
            return label
    return labels[-1]


@dataclass(frozen=True)
class TrustBands:
    tenure: str
    verified: bool
    vouches: str
    repaid_on_time: str
    ever_late: bool
    ever_defaulted: bool
    score_band: str


def trust_bands(user_id: int, circle_id: int) -> TrustBands | None:
    profile = circles.trust_profile(user_id, circle_id)
    if profile is None:
        return None
    score_low = profile.score // 20 * 20
    return TrustBands(
        tenure=_band(profile.tenure_days, (90, 365, 1095), ("<3m", "3-12m", "1-3y", "3y+")),
        verified=profile.verified,
        vouches=_band(profile.vouches_received, (1, 3, 6), ("0", "1-2", "3-5", "6+")),
        repaid_on_time=_band(profile.repaid_on_time, (1, 3, 10), ("0", "1-2", "3-9", "10+")),
        ever_late=profile.repaid_late > 0,
        ever_defaulted=profile.defaulted > 0,
        score_band=f"{score_low}-{min(100, score_low + 19)}" if score_low < 100 else "100",
    )
