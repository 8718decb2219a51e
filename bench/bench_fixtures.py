"""Fixtures in parallel: 1, 4 and 8 packs at once in one process against the simulator.

One ``Session`` on a generated 8-fixture station (bench/station_gen.py); each fixture runs a
plan, all started together with ``asyncio.gather``. Figure: wall time of N packs ÷ one pack.

Two settings, because they answer different questions:

- **real time**, the smoke plan minus the steps on the shared safety tester: physical waits
  are real, so N packs overlap exactly when the controller serialises nothing it should not
  and its CPU per pack is small. This is the target figure (< 1.5× for 8 packs).
- **virtual time**, the full smoke plan with the one shared IR tester (serialised by the
  engine): waits cost nothing, so wall time is the controller + simulator CPU for N packs;
  expect ≥ N×. Informative, and the one that shows shared-instrument interplay.

Run: ``.venv/bin/python bench/bench_fixtures.py``
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from common import PLANS
from station.clock import run
from station.config import load_config
from station.runner import RunRequest, Session, prepare
from station_gen import preset_of, write_station, write_unshared_plan

COUNTS = (1, 4, 8)


class BrokenRun(RuntimeError):
    """A run of the batch did not PASS: its wall time measures a broken run, not the controller."""


async def _batch(session: Session, config_path: Path, plan: Path, packs: int) -> tuple[float, list[str]]:
    reqs = [RunRequest(plan=str(plan), serial=f"SN{i:04d}", fixture=f"F{i}", variant=preset_of(i),
                       station=str(config_path), sim=True) for i in range(1, packs + 1)]
    preps = [prepare(r) for r in reqs]
    start = time.perf_counter()
    results = await asyncio.gather(*(session.run(r, p, signals=False) for r, p in zip(reqs, preps)))
    wall = time.perf_counter() - start
    # Every pack must PASS: the smoke plan passes on a healthy simulated pack, so anything else
    # is a controller bug (an ERROR here once came from one fixture's safe state stopping the
    # shared IR tester mid-test for another) and must not be published as a timing.
    broken = [f"{r.fixture} {verdict}: {record.get('reason')}"
              for r, (verdict, _id, record) in zip(reqs, results) if verdict != "PASS"]
    if broken:
        raise BrokenRun(f"{packs} pack(s) at once, {plan.name}: " + "; ".join(broken))
    return wall, [verdict for verdict, _id, _rec in results]


def measure(*, virtual: bool, shared: bool, reps: int = 2) -> dict[int, dict]:
    """{packs: {wall_s, samples, verdicts}}: median wall of ``reps`` batches per count."""
    out: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-fixtures-") as tmp:
        config_path = write_station(Path(tmp), max(COUNTS))
        plan = PLANS / "smoke.yaml" if shared else write_unshared_plan(Path(tmp))
        config = load_config(config_path)

        async def main() -> None:
            async with Session(config, sim=True) as session:
                await _batch(session, config_path, plan, 1)  # warm-up: connections, imports, caches
                for packs in COUNTS:
                    runs = [await _batch(session, config_path, plan, packs) for _ in range(reps)]
                    walls = [w for w, _ in runs]
                    out[packs] = {"wall_s": statistics.median(walls), "samples": walls,
                                  "verdicts": sorted({v for _, vs in runs for v in vs})}

        run(main(), virtual=virtual)
    return out


def main() -> None:
    for virtual, shared, label in ((False, False, "real time, own instruments only"),
                                   (True, True, "virtual time, smoke plan with the shared IR tester")):
        res = measure(virtual=virtual, shared=shared)
        one = res[1]["wall_s"]
        print(label)
        for packs, r in res.items():
            print(f"  {packs} pack(s) at once: {r['wall_s']:.2f} s wall = {r['wall_s'] / one:.2f}x one pack "
                  f"(verdicts {', '.join(r['verdicts'])})")


if __name__ == "__main__":
    main()
