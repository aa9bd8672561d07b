"""How every bench hands its figures to `make bench` (bench/run.py collects them into one table and
bench/results/latest.json). A bench calls `figure(...)` once per number it measured; it keeps printing its
own detail as it likes. Names are stable (`chat.direct.accepted_per_s`), lowercase, dot-separated; ratios are
figures too (unit "ratio"). Nothing here measures anything."""

from __future__ import annotations

import json
import os


def quick() -> bool:
    """True under `make bench-quick` (BENCH_QUICK=1): shorter phases, fewer clients, same figures."""
    return os.environ.get("BENCH_QUICK") == "1"


def figure(name: str, value: float | int | None, unit: str, goal: str = "") -> None:
    """Print one figure and, when bench/run.py is collecting (BENCH_RESULTS_FILE), append it as a JSON line.

    `goal` is the target in words (e.g. ">= 0.5", "<= 20 ms"), shown beside the figure; empty when none."""
    shown = "n/a" if value is None else f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"
    print(f"  {name:<48} {shown:>14} {unit:<10} {goal}")
    path = os.environ.get("BENCH_RESULTS_FILE")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"name": name, "value": value, "unit": unit, "goal": goal}) + "\n")
