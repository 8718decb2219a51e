"""Before ``station test`` forks its workers it loads what every worker would load for itself
(station.proof.parallel._warm): nothing of that may reach the proof or its workers but the
caches: no peer left on the in-process CAN bus, no thread, no file written."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import drivers.transports.loopbus as loopbus
from station.proof import execute
from station.proof.cases import plan_cases
from station.proof.parallel import _warm

ROOT = Path(__file__).resolve().parents[2]


def test_warming_prepares_every_variant_and_leaves_no_bench_behind(tmp_path):
    cases = plan_cases(ROOT / "test_plans" / "smoke.yaml")
    variants = {c.variant for c in cases}
    threads = set(threading.enumerate())
    execute.prepared.cache_clear()
    cwd = os.getcwd()
    os.chdir(tmp_path)  # anything written where it runs would show here
    try:
        _warm(cases)
    finally:
        os.chdir(cwd)
    assert execute.prepared.cache_info().currsize == len(variants) >= 1
    assert loopbus._channels == {}, "a simulated BMS still on the bus would get every worker's frames"
    assert set(threading.enumerate()) == threads
    assert list(tmp_path.iterdir()) == []
