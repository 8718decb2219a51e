"""The year-sample generator and the benchmark's queries at small scale (no timing asserted:
the figures are bench/bench_line_year.py's): shape of the sample, and that each question is
answered from an index where the baseline scans everything — with the same answer."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from station import clock
from station.line import year_sample
from station.line.pg_rows import JournalEvent
from station.results import ResultStore
from tests.line.line_helpers import run_many, write_station

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))


def test_small_year_sample_and_the_bench_queries(tmp_path, pg_roles, pg_admin):
    config = write_station(tmp_path / "st", "EOL-Y")
    (run_id,) = clock.run(run_many(config, 1), virtual=True)
    with ResultStore(config.parent / "results" / "station.db", readonly=True) as store:
        events = [JournalEvent(r["seq"], r["kind"], r["utc"], r["t"], r["data"]) for r in
                  store._query("SELECT seq, kind, utc, t, data FROM events WHERE run_id = ? "
                               "ORDER BY seq", [run_id])]
    conn = pg_admin
    conn.execute("SET TimeZone = 'UTC'")
    year_sample.load_template(conn, pg_roles.station_url, pg_roles.schema, events)
    start = dt.date(2025, 1, 1)
    year_sample.generate(conn, runs=600, start=start, days=40, stations=8, fail_rate=0.05)
    assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 601  # + the template
    per_station = conn.execute("SELECT count(DISTINCT station_id), min(started_utc), "
                               "max(started_utc) FROM runs WHERE id <> 'template'").fetchone()
    assert per_station[0] == 8
    assert per_station[1].date() == start and (per_station[2].date() - start).days == 39
    # Both months got their own partitions; 2 measurements per run, as in the template.
    assert conn.execute("SELECT count(*) FROM measurements_y2025m02").fetchone()[0] > 0
    assert conn.execute("SELECT count(*) FROM measurements").fetchone()[0] == 601 * 2
    fails, retests = conn.execute(
        "SELECT count(*) FILTER (WHERE verdict = 'FAIL'), count(*) - count(DISTINCT serial) "
        "FROM runs WHERE id <> 'template'").fetchone()
    assert 20 <= fails <= 40 and retests >= fails - 2  # failed packs come back for a retest
    fpy = conn.execute("SELECT sum(first_pass), sum(final_pass), sum(serials) FROM "
                       "v_first_pass").fetchone()
    assert fpy[0] < fpy[1] <= fpy[2]
    assert conn.execute("SELECT count(*) FROM pack_components WHERE kind = 'module'"
                        ).fetchone()[0] == 12 * (fpy[2] - 1)  # every pack but the template

    import bench_line_year as b

    result = b.bench(conn, 600, 40, start, reps=2)
    for label, q in result["queries"].items():
        assert q["baseline_plan"] == "Seq Scan", label  # the baseline reads everything
        assert q["rows"] > 0, label
    # At this size the planner may rightly prefer scanning; an index must exist for each
    # question all the same (the year-size run shows the planner taking it).
    p = b.params_for(conn, 600, 40, start)
    conn.execute("SET enable_seqscan = off")
    for label, sql in b.QUERIES.items():
        plan = " ".join(r[0] for r in conn.execute("EXPLAIN " + sql, dict(p, serial="PK1")))
        assert "Index" in plan and "Seq Scan" not in plan, (label, plan)
    conn.execute("RESET enable_seqscan")
    assert result["bytes_per_run"] > 0 and result["runs"] == 601
