"""Sim acceleration: simulated (virtual) run time ÷ wall time of the reference EOL plan.

Each variant runs through ``station.runner`` (prepare + execute: simulated bench started, real
sockets, result journal, safe state) on the virtual-time loop, exactly as ``station run --sim``
does minus the process start. Simulated time is the run's own ``duration_s`` (station clock).

Run: ``.venv/bin/python bench/bench_sim.py``
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

from common import reference_plan
from station.clock import run
from station.runner import RunRequest, execute, prepare

VARIANTS = ("bus-700", "car-400")
SERIAL = {"bus-700": "BUS0001", "car-400": "CAR0001"}


def one_run(plan: Path, variant: str, db: Path) -> tuple[float, float, str]:
    """(simulated seconds, wall seconds, verdict) of one run."""
    req = RunRequest(plan=str(plan), serial=SERIAL[variant], variant=variant, sim=True, db=str(db))
    prep = prepare(req)
    start = time.perf_counter()
    verdict, _run_id, record = run(execute(req, prep), virtual=True)
    wall = time.perf_counter() - start
    return float(record["duration_s"]), wall, verdict


def acceleration(variant: str, reps: int = 3) -> dict:
    """Median acceleration (simulated ÷ wall) for one variant, with the parts it came from."""
    plan, label = reference_plan()
    with tempfile.TemporaryDirectory(prefix="bench-sim-") as tmp:
        db = Path(tmp) / "sim.db"
        # no warm-up run: a run takes tens of seconds, first-use imports well under one
        runs = [one_run(plan, variant, db) for _ in range(reps)]
    ratios = [sim / wall for sim, wall, _ in runs]
    return {"variant": variant, "plan": label, "acceleration": statistics.median(ratios),
            "simulated_s": statistics.median(r[0] for r in runs),
            "wall_s": statistics.median(r[1] for r in runs),
            "verdicts": sorted({r[2] for r in runs}), "samples": ratios}


def main() -> None:
    for variant in VARIANTS:
        r = acceleration(variant)
        print(f"{r['plan']} {variant}: {r['simulated_s']:.1f} s simulated in {r['wall_s']:.2f} s wall "
              f"= {r['acceleration']:.0f}x  (verdicts {', '.join(r['verdicts'])})")


if __name__ == "__main__":
    main()
