"""A year of a line in PostgreSQL: generate a year-shaped sample, then time the line's questions
beside a plain-seq-scan baseline, and the database size per run (not part of `make bench`:
it fills gigabytes; run it once, niced).

    .venv/bin/python bench/bench_line_year.py [--url postgresql://postgres@127.0.0.1/test]
        [--schema bench_line_year] [--runs 200000] [--days 365] [--keep] [--json FILE]

The sample (station/line/year_sample.py) copies a real pack_eol run (simulator) set-based.
The target line is 8 stations × 1 pack / 4 min, 24 h a day: 2,880 runs a day, 1.05 M a year.
The sample spreads ``--runs`` over ``--days``, so it is thinner than the target by
``density = 2,880 / (runs / days)``; "a week" and "a day" are therefore timed over windows
``density`` times longer, holding as many runs as the target line's week or day.

Baseline: the same SQL with index scans and partition pruning turned off (what the v1 schema
had: no usable index, one table): a sequential scan of everything.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_PER_DAY = 8 * 24 * 60 // 4  # 8 stations, one pack per 4 min each
BASELINE = ("SET enable_indexscan = off; SET enable_bitmapscan = off; "
            "SET enable_indexonlyscan = off; SET enable_partition_pruning = off")
INDEXED = ("RESET enable_indexscan; RESET enable_bitmapscan; RESET enable_indexonlyscan; "
           "RESET enable_partition_pruning")

QUERIES = {
    "serial lookup (runs of one pack)": (
        "SELECT run_id, station_id, started_utc, verdict FROM v_runs WHERE serial = %(serial)s "
        "ORDER BY started_utc"),
    "one measurement's trend over a target-line week": (
        "SELECT utc, value_num FROM measurements WHERE path = %(path)s AND name = %(name)s "
        "AND utc >= %(week_from)s AND utc < %(week_to)s "
        "AND run_started >= %(week_from)s::timestamptz - interval '1 day' "
        "AND run_started < %(week_to)s ORDER BY utc"),
    "yield per station over a target-line day": (
        "SELECT station_id, sum(runs) AS runs, sum(passed) AS passed FROM v_yield_daily "
        "WHERE day_utc >= %(day_from)s AND day_utc < %(day_to)s GROUP BY station_id"),
}


def template_journal(folder: Path, plan: str = "test_plans/pack_eol.yaml"):
    """Run ``plan`` once on the simulator into a fresh journal; its events, in order."""
    from station import clock
    from station.line.pg_rows import JournalEvent
    from station.results import ResultStore
    from station.runner import RunRequest, execute, prepare

    db = folder / "template.db"
    req = RunRequest(plan=str(ROOT / plan), sim=True, serial="TEMPLATE", db=str(db))
    _, run_id, _ = clock.run(execute(req, prepare(req)), virtual=True)
    with ResultStore(db, readonly=True) as store:
        rows = store._query("SELECT seq, kind, utc, t, data FROM events WHERE run_id = ? "
                            "ORDER BY seq", [run_id])
    return [JournalEvent(r["seq"], r["kind"], r["utc"], r["t"], r["data"]) for r in rows]


def params_for(conn, runs: int, days: int, start: dt.date) -> dict:
    density = TARGET_PER_DAY / (runs / days)
    serials = [r[0] for r in conn.execute(
        "SELECT serial FROM runs WHERE id <> 'template' ORDER BY hashtext(id) LIMIT 200")]
    path, name = conn.execute(
        "SELECT path, name FROM measurements WHERE run_id = 'template' AND value_num IS NOT "
        "NULL AND lsl IS NOT NULL ORDER BY seq LIMIT 1").fetchone()
    mid = dt.datetime.combine(start + dt.timedelta(days=days // 2), dt.time(),
                              dt.UTC)
    week = dt.timedelta(days=7 * density)
    day = dt.timedelta(days=max(1.0, density))
    return {"serials": serials, "path": path, "name": name, "density": density,
            "week_from": mid, "week_to": min(mid + week, mid + dt.timedelta(days=days)),
            "day_from": mid.date(), "day_to": (mid + day).date()}


def time_query(conn, sql: str, p: dict, reps: int, baseline: bool) -> tuple[float, int, str]:
    """Median seconds over ``reps`` runs (first run warms the cache), rows, plan's top node."""
    conn.execute(BASELINE if baseline else INDEXED)
    samples, rows = [], 0
    rng = random.Random(7)
    rows = len(conn.execute(sql, dict(p, serial=p["serials"][0])).fetchall())  # warm-up
    for _ in range(reps):
        args = dict(p, serial=rng.choice(p["serials"]))
        t = time.perf_counter()
        conn.execute(sql, args).fetchall()
        samples.append(time.perf_counter() - t)
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, dict(p, serial=p["serials"][0])))
    conn.execute(INDEXED)
    return statistics.median(samples), rows, plan


def scans(plan: str) -> str:
    kinds = [k for k in ("Index Only Scan", "Index Scan", "Bitmap Heap Scan", "Seq Scan")
             if k in plan]
    return ", ".join(kinds)


def record_latency(conn, p: dict, reps: int) -> dict:
    """The full record of a pack's run, as `PgResultStore.record` reads it (one partition)."""
    from station.line.pg_store import PgResultStore

    info = conn.info
    url = f"postgresql://{info.user}@{info.host}:{info.port}/{info.dbname}"
    schema = conn.execute("SELECT current_schema()").fetchone()[0]
    ids = [r[0] for r in conn.execute("SELECT id FROM runs WHERE serial = ANY(%s)",
                                      (p["serials"][:reps + 1],))]
    samples = []
    with PgResultStore(url, schema=schema) as store:
        steps = len(store.record(ids[0])["steps"])  # warm-up
        for run_id in ids[1:reps + 1]:
            t = time.perf_counter()
            store.record(run_id)
            samples.append(time.perf_counter() - t)
    return {"median_s": statistics.median(samples), "steps": steps}


def size_per_run(conn) -> tuple[float, int, int]:
    total = conn.execute(
        "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c JOIN pg_namespace n ON "
        "n.oid = c.relnamespace WHERE n.nspname = current_schema() AND c.relkind IN ('r', 't', "
        "'m')").fetchone()[0]
    runs = conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    return total / runs, total, runs


def bench(conn, runs: int, days: int, start: dt.date, reps: int = 15) -> dict:
    p = params_for(conn, runs, days, start)
    out = {"density": p["density"], "queries": {}}
    for label, sql in QUERIES.items():
        fast, n, plan = time_query(conn, sql, p, reps, baseline=False)
        slow, n_slow, plan_slow = time_query(conn, sql, p, max(3, reps // 5), baseline=True)
        assert n == n_slow, (label, n, n_slow)
        out["queries"][label] = {"indexed_s": fast, "seq_scan_s": slow, "rows": n,
                                 "plan": scans(plan), "baseline_plan": scans(plan_slow)}
    out["record"] = record_latency(conn, p, reps)
    per_run, total, count = size_per_run(conn)
    out.update(bytes_per_run=per_run, bytes_total=total, runs=count)
    return out


def main() -> int:
    import psycopg

    from station.line import pg_migrate, year_sample

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--schema", default="bench_line_year")
    ap.add_argument("--runs", type=int, default=200_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--start", default="2025-01-01")
    ap.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    ap.add_argument("--bench-only", action="store_true",
                    help="time the queries on a sample kept by an earlier --keep run")
    ap.add_argument("--json", default=str(ROOT / "out" / "line_year.json"))
    a = ap.parse_args()
    start = dt.date.fromisoformat(a.start)
    opts = f"-c search_path={a.schema} -c TimeZone=UTC"
    # No server-side prepared statements: a prepared plan survives SET enable_*, so the
    # baseline would silently reuse the indexed plan. Every query is planned as it comes.
    with psycopg.connect(a.url, autocommit=True, options=opts, prepare_threshold=None) as conn:
        previous = json.loads(Path(a.json).read_text()) if a.bench_only else {}
        if not a.bench_only:
            conn.execute(f"DROP SCHEMA IF EXISTS {a.schema} CASCADE")
            pg_migrate.migrate(conn, a.schema)
            with tempfile.TemporaryDirectory() as tmp:
                events = template_journal(Path(tmp))
            year_sample.load_template(conn, a.url, a.schema, events)
            timings = year_sample.generate(conn, runs=a.runs, start=start, days=a.days,
                                           progress=lambda m: print(m, flush=True))
        else:
            timings = previous["generated_s"]
            events = [None] * previous["template_events"]
        result = bench(conn, a.runs, a.days, start)
        load = os.getloadavg()
        result.update(generated_s=timings, sample_runs=a.runs, sample_days=a.days,
                      template_events=len(events), load_average=load[:2],
                      utc=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
        year = TARGET_PER_DAY * 365
        result["extrapolated_year"] = {"runs": year, "bytes": result["bytes_per_run"] * year}
        if not a.keep:
            conn.execute(f"DROP SCHEMA {a.schema} CASCADE")
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    result["bytes_per_run"] = float(result["bytes_per_run"])
    result["extrapolated_year"]["bytes"] = float(result["extrapolated_year"]["bytes"])
    Path(a.json).write_text(json.dumps(result, indent=1, default=str))
    print(f"sample: {result['runs']:,} runs over {a.days} days (target density ÷ "
          f"{result['density']:.2f}); generated in {timings['total']:.0f} s")
    print(f"{'query':<52} {'indexed':>10} {'seq scan':>10} {'rows':>7}")
    for label, q in result["queries"].items():
        print(f"{label:<52} {q['indexed_s'] * 1e3:>8.2f}ms {q['seq_scan_s'] * 1e3:>8.1f}ms "
              f"{q['rows']:>7}  [{q['plan']} | {q['baseline_plan']}]")
    print(f"full record of one run (PgResultStore.record, {result['record']['steps']} steps): "
          f"{result['record']['median_s'] * 1e3:.1f} ms")
    print(f"size per run: {result['bytes_per_run'] / 1024:.1f} KiB; a year of the target line "
          f"({year:,} runs): {result['extrapolated_year']['bytes'] / 2**30:.0f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
