"""Benchmarks: isaac-deploy side by side with the bare tool underneath (not timed tests)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path


def ratio_report(
    name: str,
    times: dict[str, list[float]],
    labels: dict[str, str],
    ratio_of: tuple[str, str, str],
    target: float,
    digits: int = 3,
) -> None:
    """Print the median/min/max table of ``times`` and the ratio ``ratio_of`` = (numerator key,
    denominator key, its label) against ``target``; record it all in ``results/<name>.json``."""
    med = {key: statistics.median(values) for key, values in times.items()}
    top, bottom, label = ratio_of
    ratio = med[top] / med[bottom]
    print("| run | median s | min s | max s |\n|---|---|---|---|")
    for key, values in times.items():
        cells = (f"{value:.{digits}f}" for value in (med[key], min(values), max(values)))
        print(f"| {labels[key]} | {' | '.join(cells)} |")
    verdict = "meets" if ratio <= target else "MISSES"
    runs = len(times[top])
    print(f"{label} = {ratio:.2f}x ({verdict} the {target}x target), {runs} runs each")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    record = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": platform.node(),
        "cpus": os.cpu_count(),
        "times": times,
        "median": med,
        "ratio": ratio,
    }
    (out / f"{name}.json").write_text(json.dumps(record, indent=2))
