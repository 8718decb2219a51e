"""Memory: peak RSS of a full EOL run, and RSS growth across many runs in one process.

- Peak: ``station run <reference plan> --sim`` as its own process; peak RSS read with
  ``getrusage(RUSAGE_CHILDREN)`` in a small wrapper process (so nothing else is counted).
- Growth: a child process (``--growth N``) opens one ``Session`` on the simulated station and
  runs the smoke plan N times on virtual time, reading ``VmRSS`` from /proc after each run;
  growth = RSS after run N − RSS after run 20 (the first runs fill caches and pools).

Run: ``.venv/bin/python bench/bench_memory.py``
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from common import PLANS, ROOT, reference_plan

STATION = Path(sys.executable).with_name("station")
BASELINE_RUN = 20

_WRAPPER = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def peak_rss_mb(variant: str = "bus-700") -> float:
    """Peak RSS in MB of one whole ``station run --sim`` of the reference plan."""
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
        argv = [sys.executable, "-c", _WRAPPER, str(STATION), "run", str(reference_plan()[0]), "--sim",
                "--variant", variant, "--serial", "BUS0001", "--db", str(Path(tmp) / "m.db"), "--plain"]
        out = subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1]) / 1024.0  # ru_maxrss is in KiB on Linux


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def _growth_child(runs: int) -> None:
    """In the child: run the smoke plan ``runs`` times in one Session; print RSS per run as JSON."""
    from station.clock import run
    from station.config import SIM_CONFIG, load_config
    from station.runner import RunRequest, Session, prepare

    with tempfile.TemporaryDirectory(prefix="bench-growth-") as tmp:
        req = RunRequest(plan=str(PLANS / "smoke.yaml"), serial="SN0001", sim=True, db=str(Path(tmp) / "g.db"))
        prep = prepare(req)

        async def main() -> list[float]:
            rss, verdicts = [], set()
            async with Session(load_config(SIM_CONFIG), sim=True, db=req.db) as session:
                for _ in range(runs):
                    verdict, _id, _rec = await session.run(req, prep, signals=False)
                    verdicts.add(verdict)
                    rss.append(rss_mb())
            return rss, sorted(verdicts)

        rss, verdicts = run(main(), virtual=True)
    print(json.dumps({"rss_mb": rss, "verdicts": verdicts}))


def growth_mb(runs: int = 200) -> dict:
    """RSS growth (MB) between run ``BASELINE_RUN`` and run ``runs``, measured in a child process."""
    out = subprocess.run([sys.executable, __file__, "--growth", str(runs)], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    data = json.loads(out.strip().splitlines()[-1])
    rss = data["rss_mb"]
    base = rss[min(BASELINE_RUN, len(rss)) - 1]
    return {"growth_mb": rss[-1] - base, "runs": runs, "baseline_run": BASELINE_RUN,
            "rss_first_mb": rss[0], "rss_base_mb": base, "rss_last_mb": rss[-1], "verdicts": data["verdicts"],
            "rss_every_20": rss[19::20]}


def main() -> None:
    print(f"peak RSS, {reference_plan()[1]} bus-700 run: {peak_rss_mb():.1f} MB")
    g = growth_mb()
    print(f"RSS growth run {g['baseline_run']} -> {g['runs']}: {g['growth_mb']:+.1f} MB "
          f"({g['rss_base_mb']:.1f} -> {g['rss_last_mb']:.1f} MB; verdicts {', '.join(g['verdicts'])})")
    print("RSS every 20 runs:", ", ".join(f"{x:.1f}" for x in g["rss_every_20"]))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--growth":
        _growth_child(int(sys.argv[2]))
    else:
        main()
