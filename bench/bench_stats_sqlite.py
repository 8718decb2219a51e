"""`station stats` over a station's SQLite store at 10k and 100k runs: peak RSS and time
(not part of `make bench`; run once, niced).

    nice -n 10 .venv/bin/python bench/bench_stats_sqlite.py [--sizes 10000,100000] [--json FILE]

The store is filled directly (one transaction per 5,000 runs, schema of station/results/schema.py)
with runs shaped like pack_eol's: 41 steps and 68 numeric measurements each, limits as JSON, 3 %
failing on one measurement, 8 stations × 2 fixtures, spread over a year. `station stats` runs
as a separate process (``--format json``) and its peak RSS (GNU time %M, else ``wait4``) and wall time are taken.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIME = Path("/usr/bin/time")


def peak_rss_run(cmd: list[str]) -> tuple[int, float, float]:
    """Run ``cmd``; (exit code, wall s, peak RSS MiB). Through GNU time when there is one: a
    child forked straight from this (large) process would count our pages in its ru_maxrss
    (Linux keeps the pre-exec high-water mark), inflating the figure."""
    t = time.perf_counter()
    if TIME.exists():
        with tempfile.NamedTemporaryFile("r") as rss:
            proc = subprocess.run([str(TIME), "-f", "%M", "-o", rss.name, *cmd], cwd=ROOT)
            return proc.returncode, time.perf_counter() - t, int(rss.read().split()[-1]) / 1024
    proc = subprocess.Popen(cmd, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    return os.waitstatus_to_exitcode(status), time.perf_counter() - t, usage.ru_maxrss / 1024
sys.path.insert(0, str(ROOT))

STEPS, MEASUREMENTS = 41, 68


def fill(path: Path, first: int, last: int, total: int, rng: random.Random) -> None:
    from station.results.schema import migrate

    conn = sqlite3.connect(path)
    conn.isolation_level = None
    migrate(conn)
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    step_s = 365 * 86400 / total
    limits = [json.dumps({"unit": "V", "min": 90.0 + i, "max": 110.0 + i}) for i in range(MEASUREMENTS)]
    for lo in range(first, last + 1, 5000):
        hi = min(last, lo + 4999)
        runs, steps, meas = [], [], []
        for n in range(lo, hi + 1):
            t = (start + dt.timedelta(seconds=n * step_s)).isoformat(timespec="milliseconds")
            fail = rng.random() < 0.03
            bad = rng.randrange(MEASUREMENTS) if fail else -1
            runs.append((f"r{n:08d}", f"PK{n:08d}", "pack-eol", "3.2.0", "car-400",
                         f"EOL-{1 + n % 8}", f"F{1 + (n // 8) % 2}", t, "FAIL" if fail else "PASS",
                         "finished", "production", 0, "[]"))
            for s in range(STEPS):
                steps.append((f"r{n:08d}", f"main/s{s:02d}", 1, s,
                              "failed" if fail and s == bad % STEPS else "passed"))
            for i in range(MEASUREMENTS):
                v = 100.0 + i + (25.0 if i == bad else rng.gauss(0, 2))
                meas.append((f"r{n:08d}", i, f"main/s{i % STEPS:02d}", 1, f"m{i:02d}", v, "V",
                             limits[i], "fail" if i == bad else "pass", t))
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO runs (id, serial, plan_id, plan_version, variant, station_id, "
                         "fixture_id, started_utc, verdict, status, station_mode, simulated, faults) "
                         "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", runs)
        conn.executemany("INSERT INTO steps (run_id, path, attempt, seq, outcome) VALUES (?,?,?,?,?)", steps)
        conn.executemany("INSERT INTO measurements (run_id, seq, path, attempt, name, value_num, unit, "
                         "limits, verdict, utc) VALUES (?,?,?,?,?,?,?,?,?,?)", meas)
        conn.execute("COMMIT")
    conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--json", default=str(ROOT / "out" / "stats_sqlite.json"))
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    rng = random.Random(1)
    out = {"sizes": []}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "store.db"
        done = 0
        for size in sizes:
            t = time.perf_counter()
            fill(db, done + 1, size, max(sizes), rng)
            gen, done = time.perf_counter() - t, size
            target = Path(tmp) / "stats.json"
            code, wall, rss = peak_rss_run([sys.executable, "-m", "station.cli", "stats", str(db),
                                            "--format", "json", "-o", str(target)])
            assert code == 0
            data = json.loads(target.read_text())
            row = {"runs": size, "measurement_rows": size * MEASUREMENTS, "generate_s": gen,
                   "stats_wall_s": wall, "peak_rss_mib": rss,
                   "db_mib": db.stat().st_size / 2**20, "n_max": max(c["n"] for c in data["capability"]),
                   "load_average": os.getloadavg()[:2]}
            out["sizes"].append(row)
            print(f"{size:>8,} runs: stats {wall:.1f} s, peak RSS {row['peak_rss_mib']:.0f} MiB "
                  f"(store {row['db_mib']:.0f} MiB)", flush=True)
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
