"""Server-rendered charts for the admin: plain inline SVG (no scripts, no external files), every label escaped."""

from __future__ import annotations

import datetime as dt

from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from backend.wallet.money import format_fen

from .selectors import Funnel, LeaderRow

BAR = "#c0392b"
MUTED = "#d5d8dc"
STAGES = (("shares", "Shares"), ("clicks", "Clicks"), ("signups", "Sign-ups"), ("qualified", "Qualified"),
          ("rewarded", "Rewarded"))


def funnel_svg(funnel: Funnel, *, width: int = 520) -> SafeString:
    """One horizontal bar per funnel stage, scaled to the widest, with the count and the step conversion."""
    label_w, row_h = 90, 26
    widest = max([getattr(funnel, name) for name, _ in STAGES] + [1])
    rows, previous = [], None
    for i, (name, label) in enumerate(STAGES):
        value = getattr(funnel, name)
        bar = int((width - label_w - 120) * value / widest)
        rate = f" ({100 * value / previous:.1f}%)" if previous else ""
        y = i * row_h
        rows.append(
            f'<text x="0" y="{y + 17}" font-size="12">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 4}" width="{bar}" height="{row_h - 8}" fill="{BAR}"/>'
            f'<text x="{label_w + bar + 6}" y="{y + 17}" font-size="12">{value}{escape(rate)}</text>')
        previous = value
    height = row_h * len(STAGES)
    return mark_safe(f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Referral funnel" '
                     f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">{"".join(rows)}</svg>')


def budget_svg(*, budget: int, spent: int, burn: list[tuple[dt.date, int]], width: int = 520) -> SafeString:
    """The budget used as one bar, then the payout per day as columns."""
    used = int(width * spent / budget) if budget else 0
    parts = [
        f'<rect x="0" y="0" width="{width}" height="18" fill="{MUTED}"/>',
        f'<rect x="0" y="0" width="{min(used, width)}" height="18" fill="{BAR}"/>',
        f'<text x="0" y="34" font-size="12">{escape(format_fen(spent))} of {escape(format_fen(budget))} used '
        f'({escape(format_fen(budget - spent))} left)</text>',
    ]
    chart_top, chart_h = 46, 90
    if burn:
        top = max(paid for _, paid in burn) or 1
        step = width / len(burn)
        for i, (day, paid) in enumerate(burn):
            h = int(chart_h * paid / top)
            x = int(i * step)
            parts.append(f'<rect x="{x}" y="{chart_top + chart_h - h}" width="{max(1, int(step) - 2)}" '
                         f'height="{h}" fill="{BAR}"><title>{escape(day.isoformat())}: '
                         f'{escape(format_fen(paid))}</title></rect>')
        parts.append(f'<text x="0" y="{chart_top + chart_h + 14}" font-size="11">{escape(burn[0][0].isoformat())}'
                     f' … {escape(burn[-1][0].isoformat())} (paid per day)</text>')
    height = chart_top + chart_h + 20
    return mark_safe(f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Budget burn" '
                     f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">{"".join(parts)}</svg>')


def leaderboard_html(rows: list[LeaderRow]) -> SafeString:
    """Client managers per branch, ranked within their branch."""
    if not rows:
        return format_html("<p>{}</p>", "No staff shares yet.")
    by_branch: dict[str, list[LeaderRow]] = {}
    for row in rows:
        by_branch.setdefault(row.branch or "(no branch)", []).append(row)
    tables = []
    for branch in sorted(by_branch):
        body = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((n, r.display_name, r.funnel.clicks, r.funnel.signups, r.funnel.qualified, r.funnel.rewarded)
             for n, r in enumerate(by_branch[branch], start=1)))
        tables.append(format_html(
            "<h4>{}</h4><table><thead><tr><th>#</th><th>Client manager</th><th>Clicks</th><th>Sign-ups</th>"
            "<th>Qualified</th><th>Rewarded</th></tr></thead><tbody>{}</tbody></table>", branch, body))
    return mark_safe("".join(tables))
