"""The operations chart of a campaign: inline SVG (no scripts, no external files), every label escaped."""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from backend.wallet.money import format_fen

from .selectors import CampaignStats

BAR = "#c0392b"
MUTED = "#d5d8dc"


def campaign_svg(stats: CampaignStats, *, width: int = 520) -> SafeString:
    """Coupons issued / claimed / redeemed and draws / wins as bars, then cost against budget as one bar."""
    label_w, row_h = 90, 24
    rows = (("Issued", stats.issued), ("Claimed", stats.claimed), ("Redeemed", stats.redeemed),
            ("Draws", stats.draws), ("Wins", stats.wins))
    widest = max([value for _, value in rows] + [1])
    parts = []
    for i, (label, value) in enumerate(rows):
        bar, y = int((width - label_w - 60) * value / widest), i * row_h
        parts.append(f'<text x="0" y="{y + 16}" font-size="12">{escape(label)}</text>'
                     f'<rect x="{label_w}" y="{y + 4}" width="{bar}" height="{row_h - 8}" fill="{BAR}"/>'
                     f'<text x="{label_w + bar + 6}" y="{y + 16}" font-size="12">{value}</text>')
    top = len(rows) * row_h + 10
    used = min(width, int(width * stats.spent / stats.budget)) if stats.budget else 0
    parts.append(f'<rect x="0" y="{top}" width="{width}" height="18" fill="{MUTED}"/>'
                 f'<rect x="0" y="{top}" width="{used}" height="18" fill="{BAR}"/>'
                 f'<text x="0" y="{top + 34}" font-size="12">Cost {escape(format_fen(stats.spent))} of budget '
                 f'{escape(format_fen(stats.budget))} ({escape(format_fen(stats.budget - stats.spent))} left)</text>')
    height = top + 44
    return mark_safe(f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Campaign results" '
                     f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">{"".join(parts)}</svg>')
