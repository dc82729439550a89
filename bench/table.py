"""One row per figure: ours, the anchor measured in the same run, their ratio."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    figure: str
    ours: float
    anchor: float | None
    unit: str
    note: str = ""

    def ratio(self) -> str:
        return f"{self.ours / self.anchor:.2f}" if self.anchor else "-"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value * 1000:.1f} ms"
    if unit == "us":
        return f"{value * 1e6:.0f} us"
    return f"{value:,.0f} {unit}"


def render(rows: Sequence[Row]) -> str:
    header = ("figure", "ours", "anchor", "ratio", "note")
    cells = [header] + [
        (r.figure, fmt(r.ours, r.unit), fmt(r.anchor, r.unit), r.ratio(), r.note) for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def children_cpu() -> float:
    """CPU seconds (user + system) used so far by finished child processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_seconds(run: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(median wall time, mean CPU time of the child processes) of `repeat` runs of `run`.

    On a shared machine the wall time moves with the load; the CPU time much less.
    """
    samples = []
    cpu = children_cpu()
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), (children_cpu() - cpu) / repeat


def p50(samples: Sequence[float]) -> float:
    return statistics.median(samples)
