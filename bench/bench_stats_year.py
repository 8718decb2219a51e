"""`station stats` at the scale of a line: peak RSS and time for 10k, 100k and 200k runs in
PostgreSQL, read with a SELECT-only role (not part of `make bench`: it fills gigabytes; run it
once, niced).

    nice -n 10 .venv/bin/python bench/bench_stats_year.py [--url postgresql://postgres@127.0.0.1/test]
        [--schema h22_bench_stats] [--sizes 10000,100000,200000] [--days 365] [--json FILE]

The sample is the year-shaped one of bench_line_year.py (station/line/year_sample.py: a real
pack_eol run copied set-based, ~68 measurements each), grown in steps to each size; after each
step `station stats` runs as a separate process (`--format json`, the aggregates, and
`--format html`, which also fetches ≤ 300 trend values per measurement) and its peak RSS
(GNU time's %M, else ``wait4`` ru_maxrss) and wall time are recorded. Aggregation runs in the database, so RSS
should stay flat while runs grow 20×; the time grows with the rows the database scans.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
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
sys.path.insert(0, str(ROOT / "bench"))

READER = "h22_bench_stats_reader"


def run_stats(url: str, schema: str, fmt: str, out: Path) -> dict:
    cmd = [sys.executable, "-m", "station.cli", "stats", url, "--schema", schema,
           "--format", fmt, "-o", str(out)]
    code, wall, rss = peak_rss_run(cmd)
    if code != 0:
        raise SystemExit(f"station stats exited {code}")
    return {"wall_s": wall, "peak_rss_mib": rss, "bytes_out": out.stat().st_size}


def main() -> int:
    import psycopg

    from bench_line_year import template_journal
    from station.line import pg_migrate, year_sample

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--schema", default="h22_bench_stats")
    ap.add_argument("--sizes", default="10000,100000,200000")
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--start", default="2025-01-01")
    ap.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    ap.add_argument("--json", default=str(ROOT / "out" / "stats_year.json"))
    ap.add_argument("--grown", type=int, default=0,
                    help="the schema (kept) already holds runs 1..N of this sample: grow it on")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    total = max(sizes)
    start = dt.date.fromisoformat(a.start)
    reader_url = a.url.replace("//postgres@", f"//{READER}@", 1)
    results = {"sizes": [], "schema": a.schema, "days": a.days}
    with psycopg.connect(a.url, autocommit=True, options=f"-c search_path={a.schema}") as conn:
        if not a.grown:
            conn.execute(f"DROP SCHEMA IF EXISTS {a.schema} CASCADE")
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (READER,)).fetchone():
            conn.execute(f"DROP OWNED BY {READER}")
            conn.execute(f"DROP ROLE {READER}")
        conn.execute(f"CREATE ROLE {READER} LOGIN")
        try:
            if a.grown:  # the reader role is new: grant it what migrate grants readers
                conn.execute(f"GRANT USAGE ON SCHEMA {a.schema} TO {READER}")
                conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {a.schema} TO {READER}")
            else:
                pg_migrate.migrate(conn, a.schema, reader_roles=(READER,))
                with tempfile.TemporaryDirectory() as tmp:
                    events = template_journal(Path(tmp))
                year_sample.load_template(conn, a.url, a.schema, events)
            done = a.grown
            for size in sizes:
                t = time.perf_counter()
                if size > done:
                    year_sample.generate(conn, runs=total, start=start, days=a.days,
                                         numbers=(done + 1, size),
                                         progress=lambda m: print(m, flush=True))
                gen = time.perf_counter() - t
                done = size
                n_meas = conn.execute("SELECT count(*) FROM measurements").fetchone()[0]
                row = {"runs": size, "measurement_rows": n_meas, "generate_s": gen,
                       "load_average": os.getloadavg()[:2]}
                with tempfile.TemporaryDirectory() as tmp:
                    for fmt in ("json", "html"):
                        out = Path(tmp) / f"stats.{fmt}"
                        row[fmt] = run_stats(reader_url, a.schema, fmt, out)
                        if fmt == "json":
                            data = json.loads(out.read_text())
                            row["yield_rows"] = len(data["yield"])
                            row["capability_rows"] = len(data["capability"])
                            row["n_max"] = max(c["n"] for c in data["capability"])
                results["sizes"].append(row)
                print(f"{size:>8,} runs ({n_meas:,} measurements): json {row['json']['wall_s']:.1f} s "
                      f"{row['json']['peak_rss_mib']:.0f} MiB; html {row['html']['wall_s']:.1f} s "
                      f"{row['html']['peak_rss_mib']:.0f} MiB", flush=True)
        finally:
            if not a.keep:
                conn.execute(f"DROP SCHEMA IF EXISTS {a.schema} CASCADE")
            conn.execute(f"DROP OWNED BY {READER}")
            conn.execute(f"DROP ROLE {READER}")
    results["utc"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
