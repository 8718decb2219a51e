"""Crash safety of the record: SIGKILL the station at random moments of a run, >= 100 times.

Each kill hits a forked ``station run test_plans/smoke.yaml --sim`` (virtual time, journal in a
tmp store with the default ``synchronous=FULL``). After each kill the lane opens the store and
checks: it opens, ``PRAGMA integrity_check`` is ok, no run is left "running", the killed run is
``interrupted`` (or ``finished`` if the kill came after ``RunFinished``), and every
``StepFinished`` / ``MeasurementTaken`` the child saw committed is in the record. Four lanes
run in parallel, each on its own store (one kill in ten during start-up, the rest after RunStarted), which successive children reopen (recovery with a
live WAL file and dead writers' locks).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.reliability import rig

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "test_plans" / "smoke.yaml"
LANES, KILLS_PER_LANE = 4, 25
MAX_DELAY_S = 1.2  # s after RunStarted at most; each lane times one run and kills within it


def test_sigkill_at_random_moments_loses_no_committed_step(tmp_path):
    start = time.perf_counter()
    procs = []
    for lane in range(LANES):
        out = tmp_path / f"lane{lane}.json"
        cmd = [sys.executable, str(Path(__file__).with_name("crash_lane.py")), str(PLAN),
               str(tmp_path / f"lane{lane}" / "station.db"), str(KILLS_PER_LANE), str(1000 + lane), str(out),
               str(MAX_DELAY_S)]
        procs.append((subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT), out))
    results = []
    for proc, out in procs:
        output, _ = proc.communicate(timeout=150)
        assert proc.returncode == 0, output.decode(errors="replace")[-3000:]
        results.extend(json.loads(out.read_text()))
    wall = time.perf_counter() - start

    problems = [p for r in results for p in r["problems"]]
    assert not problems, problems[:10]
    killed = [r for r in results if r["killed"]]
    assert len(killed) >= 100, f"only {len(killed)} SIGKILLs landed"
    interrupted = [r for r in results if r.get("status") == "interrupted"]
    mid_run = [r for r in interrupted if r["steps"] > 0]
    rig.report("crash safety (SIGKILL, synchronous=FULL)", [
        f"kills {len(killed)} (+{len(results) - len(killed)} runs that ended first) in {wall:.1f} s wall "
        f"({LANES} lanes; kill window after RunStarted {min(r['window_s'] for r in results):.2f}"
        f"-{max(r['window_s'] for r in results):.2f} s)",
        f"before RunStarted {sum(not r['started'] for r in results)}; interrupted {len(interrupted)} "
        f"(with steps committed {len(mid_run)}); after RunFinished {sum(r['finished'] for r in results)} "
        f"(+{sum(bool(r.get('finished_unreported')) for r in results)} between its commit and its report)",
        f"committed steps checked {sum(r['steps'] for r in results)}, measurements "
        f"{sum(r['measurements'] for r in results)}; missing 0; runs left 'running' 0; integrity ok",
    ])
    # the random moments must really land inside runs, not only before or after them
    assert len(mid_run) >= 20, f"only {len(mid_run)} kills landed mid-run"
