"""Engine overhead per step: a generated 1,000-step plan of trivial measurements with limits.

The Sequencer runs it with no instruments; per-step overhead = wall / steps. Three settings:
no subscribers at all, and with the SQLite result journal as the critical subscriber (as
``station run`` has it), with ``synchronous=FULL`` (default, one fsync per event) and
``NORMAL``. Each figure is the median of several runs on a fresh real-time event loop.

Run: ``.venv/bin/python bench/bench_engine.py``
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from common import ROOT, generated_plan, median_of
from station.engine.parts import Instruments, Outlets, RunInfo
from station.engine.sequencer import Sequencer
from station.plan.bind import bind_plan
from station.plan.loader import load_plan_text

STEPS = 1000


def bound_plan(steps: int = STEPS):
    return bind_plan(load_plan_text(generated_plan(steps), "bench-1000.yaml"))


def run_once(bound, journal: str | None = None) -> float:
    """Wall seconds of one Sequencer run (journal: None, "FULL" or "NORMAL")."""
    store = None
    critical = []
    if journal:
        from station.results.store import ResultStore

        (ROOT / "out").mkdir(exist_ok=True)
        tmp = tempfile.TemporaryDirectory(prefix="bench-journal-", dir=ROOT / "out")
        store = ResultStore(Path(tmp.name) / "bench.db", synchronous=journal).open()
        critical = [store.handle]

    async def go() -> float:
        seq = Sequencer(bound, Instruments(), RunInfo(serial="BENCH1"), Outlets(critical=critical))
        start = time.perf_counter()
        verdict = await seq.run()
        wall = time.perf_counter() - start
        if verdict != "PASS":  # a benchmark of a broken run would measure the wrong thing
            raise RuntimeError(f"bench plan ended {verdict}")
        return wall

    try:
        return asyncio.run(go())
    finally:
        if store is not None:
            store.close()
            tmp.cleanup()


def per_step(journal: str | None = None, reps: int = 7) -> tuple[float, list[float]]:
    """Median per-step overhead in seconds, and the per-step samples."""
    bound = bound_plan()
    run_once(bound, journal)  # warm-up: imports, first-call caches
    med, samples = median_of(reps, lambda: run_once(bound, journal))
    return med / STEPS, [s / STEPS for s in samples]


def main() -> None:
    for journal in (None, "NORMAL", "FULL"):
        med, _ = per_step(journal, reps=5)
        label = f"journal synchronous={journal}" if journal else "no subscribers"
        print(f"engine overhead per step, {label:28s} {med * 1e6:8.1f} µs")


if __name__ == "__main__":
    main()
