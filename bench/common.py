"""Shared pieces of the benchmark suite: repetitions, the generated plan, figures and the table.

Every figure is the median of several repetitions: on a 2-core machine single runs vary ~2×.
Nothing here asserts; ``run_all.py`` compares each figure with its target and prints pass/fail.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLANS = ROOT / "test_plans"

if str(ROOT) not in sys.path:  # `python bench/x.py` puts bench/ first, not the repo root
    sys.path.insert(0, str(ROOT))


def reference_plan() -> tuple[Path, str]:
    """The reference EOL plan, or the smoke plan while pack_eol.yaml does not exist yet."""
    eol = PLANS / "pack_eol.yaml"
    if eol.exists():
        return eol, "pack_eol.yaml"
    return PLANS / "smoke.yaml", "smoke.yaml (pack_eol.yaml not yet written)"


def generated_plan(steps: int = 1000) -> str:
    """A plan of ``steps`` trivial computed measurements, each judged against limits."""
    lines = ["schema_version: 1", "id: bench-1000", "version: 1.0.0",
             f"title: {steps} trivial measurements with limits", "main:"]
    for i in range(steps):
        lines += [f"  - id: s{i}",
                  '    station.calc: {x: "1 V"}',
                  "    expect: {x: {min: 0 V, max: 2 V}}"]
    return "\n".join(lines) + "\n"


def median_of(reps: int, fn: Callable[[], float]) -> tuple[float, list[float]]:
    """Run ``fn`` ``reps`` times; return (median, all samples)."""
    samples = [fn() for _ in range(reps)]
    return statistics.median(samples), samples


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@dataclass
class Figure:
    """One row of the table. ``ours``/``peer`` are raw numbers in ``unit``; ``scale`` is for display."""

    key: str
    metric: str
    ours: float | None
    unit: str
    target: str
    passed: bool | None
    peer: float | None = None
    ratio: float | None = None
    note: str = ""
    samples: list[float] = field(default_factory=list)

    def as_json(self) -> dict:
        return asdict(self)


def fmt(value: float | None, unit: str) -> str:
    """Human form of a figure: seconds scale to µs/ms; rates get thousands separators."""
    if value is None:
        return "—"
    if unit == "s":
        if value < 1e-3:
            return f"{value * 1e6:.3g} µs"
        return f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"
    if unit == "×":
        return f"{value:.3g}×"
    if value >= 1000:
        return f"{value:,.0f} {unit}"
    return f"{value:.3g} {unit}".strip()


def table(figures: list[Figure]) -> str:
    """The one table ``make bench`` prints."""
    rows = [("metric", "ours", "peer", "ratio", "target", "result")]
    for f in figures:
        ratio = "—" if f.ratio is None else f"{f.ratio:.3g}×"
        result = {True: "pass", False: "FAIL", None: "n/a"}[f.passed]
        rows.append((f.metric, fmt(f.ours, f.unit), fmt(f.peer, f.unit), ratio, f.target, result))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    out.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    notes = [f"- {f.metric}: {f.note}" for f in figures if f.note]
    return "\n".join(out + ([""] + notes if notes else []))


def machine() -> dict:
    """What the figures were measured on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "platform": platform.platform()}
