"""The year schema in use: genealogy from BMS DIDs and scans, views for BI tools, `station db
migrate|retain` (archive then drop whole months), `station results export --format csv|parquet`."""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from station import clock
from station.line.forwarder import Forwarder
from station.line.pg_rows import JournalEvent
from station.line.pg_store import PgResultStore
from tests.line.line_helpers import PG_URL, random_name, run_many, write_station

ROOT = Path(__file__).resolve().parents[2]


def _events(run_id, serial, started, verdict="PASS", *, retry_fail=False):
    """A small journal: BMS identity, a module scan, a step failed then passed on retry."""
    day = started[:10]
    ev = [("RunStarted", {"serial": serial, "plan_id": "pack-eol", "plan_version": "1",
                          "plan_title": "t", "plan_path": "p.yaml", "plan_sha256": "ab",
                          "variant": "car-400", "parameters": {}, "station_id": "EOL-1",
                          "fixture_id": "F1", "operator": "op", "software_version": "0.1",
                          "simulated": True, "faults": [], "planned_steps": 3,
                          "mes_transaction_id": "TX-" + run_id, "station_mode": "production",
                          "config_sha256": "cf" * 32}),
          ("StepStarted", {"path": "main/id", "step_id": "id", "name": "id",
                           "action": "bms.identity", "phase": "main"}),
          ("MeasurementTaken", {"path": "main/id", "name": "ecu_serial", "value": "BMS-" + serial,
                                "unit": "", "limits": {}, "verdict": "pass"}),
          ("StepFinished", {"path": "main/id", "step_id": "id", "outcome": "passed",
                            "duration_s": 0.1}),
          ("StepStarted", {"path": "main/module_3_serial", "step_id": "module_3_serial",
                           "name": "scan", "action": "operator.input", "phase": "main"}),
          ("MeasurementTaken", {"path": "main/module_3_serial", "name": "value",
                                "value": "MOD-" + serial, "unit": "", "limits": {},
                                "verdict": "pass"}),
          ("StepFinished", {"path": "main/module_3_serial", "step_id": "module_3_serial",
                            "outcome": "passed", "duration_s": 0.1})]
    for attempt, outcome in ([(1, "failed"), (2, "passed")] if retry_fail else
                             [(1, "failed" if verdict == "FAIL" else "passed")]):
        ev += [("StepStarted", {"path": "main/iso", "step_id": "iso", "name": "iso",
                                "action": "safety.insulation", "phase": "main",
                                "attempt": attempt}),
               ("MeasurementTaken", {"path": "main/iso", "name": "resistance",
                                     "value": 5e8 if outcome == "passed" else 1e6, "unit": "ohm",
                                     "limits": {"min": 2e7}, "verdict": outcome[:4]}),
               ("StepFinished", {"path": "main/iso", "step_id": "iso", "outcome": outcome,
                                 "duration_s": 1.0, "attempt": attempt})]
    ev.append(("RunFinished", {"verdict": verdict, "reason": None, "duration_s": 9.0}))
    out = []
    for seq, (kind, data) in enumerate(ev, 1):
        utc = f"{day}T{started[11:19]}.{seq:03d}+00:00"
        out.append(JournalEvent(seq, kind, utc, float(seq), json.dumps(
            {"run_id": run_id, "utc": utc, "t": float(seq), **data})))
    return out


def _fill(url, schema):
    with PgResultStore(url, schema=schema) as store:
        store.ingest("r1", _events("r1", "PK1", "2026-03-02T08:00:00", "FAIL"),
                     status="finished")
        store.ingest("r2", _events("r2", "PK1", "2026-03-02T09:00:00", "PASS"),
                     status="finished")
        store.ingest("r3", _events("r3", "PK2", "2026-03-02T10:00:00", "PASS", retry_fail=True),
                     status="finished")
        store.ingest("r4", _events("r4", "PK3", "2026-07-15T10:00:00", "PASS"),
                     status="finished")


def test_genealogy_and_views_for_bi_tools(pg_roles, pg_admin):
    # Months outside the ones made ahead land in the DEFAULT partition and still work.
    _fill(pg_roles.station_url, pg_roles.schema)
    with psycopg.connect(pg_roles.reader_url, autocommit=True,
                         options=f"-c search_path={pg_roles.schema}") as rd:
        gen = rd.execute("SELECT pack_serial, kind, position, component_serial, source, run_id "
                         "FROM v_pack_genealogy ORDER BY 1, 2").fetchall()
        assert ("PK1", "bms", "ecu_serial", "BMS-PK1", "bms_did", "r2") in gen  # latest run
        assert ("PK1", "module", "3", "MOD-PK1", "scan", "r2") in gen and len(gen) == 6
        assert rd.execute("SELECT pack_serial FROM pack_components WHERE component_serial = "
                          "'MOD-PK2'").fetchone() == ("PK2",)
        yd = rd.execute("SELECT runs, passed, failed, yield_pct::float8 FROM v_yield_daily "
                        "WHERE day_utc = '2026-03-02'").fetchone()
        assert yd == (3, 2, 1, pytest.approx(66.67))
        fp = rd.execute("SELECT serials, first_pass, final_pass FROM v_first_pass WHERE "
                        "day_utc = '2026-03-02'").fetchone()
        assert fp == (2, 1, 2)  # PK1 failed first then passed; PK2 passed first
        # Only the last attempt counts: r3's retried step is not a failure.
        assert rd.execute("SELECT run_count FROM (SELECT sum(failed) AS run_count FROM "
                          "v_step_failures WHERE day_utc = '2026-03-02') x").fetchone() == (1,)
        m = rd.execute("SELECT value, lsl::float8, usl FROM v_measurements WHERE run_id = 'r2' "
                       "AND name = 'resistance'").fetchone()
        assert m == (5e8, 2e7, None)
        mode = rd.execute("SELECT station_mode, mes_transaction_id FROM v_runs WHERE run_id = 'r4'"
                          ).fetchone()
        assert mode == ("production", "TX-r4")


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "station.cli", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_db_migrate_cli_and_retention_archive_then_drop(pg_roles, pg_admin, tmp_path):
    typo = random_name("eol_test_nope_")
    done = _cli("db", "migrate", PG_URL, "--schema", typo)
    assert done.returncode == 3 and "--create-schema" in done.stderr
    done = _cli("db", "migrate", PG_URL, "--schema", pg_roles.schema)
    assert done.returncode == 0 and "up to date" in done.stdout, done.stderr
    _fill(pg_roles.station_url, pg_roles.schema)
    done = _cli("db", "retain", PG_URL, "--schema", pg_roles.schema, "--keep-months", "1")
    assert done.returncode == 2 and "--archive" in done.stderr  # never drops by accident
    # "Today" is 2026-07-20: keeping 2 months before this one keeps May..July, drops March.
    from station.line import pg_admin as admin

    with psycopg.connect(PG_URL, autocommit=True,
                         options=f"-c search_path={pg_roles.schema} -c TimeZone=UTC") as conn:
        import datetime as dt

        months = admin.retain(conn, 2, tmp_path / "archive", today=dt.date(2026, 7, 20))
    assert months == ["2026-03"]
    with gzip.open(tmp_path / "archive" / "2026-03" / "measurements.csv.gz", "rt") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 and {r["run_id"] for r in rows} == {"r1", "r2", "r3"}
    with gzip.open(tmp_path / "archive" / "2026-03" / "runs.csv.gz", "rt") as f:
        assert sorted(r["id"] for r in csv.DictReader(f)) == ["r1", "r2", "r3"]
    assert pg_admin.execute("SELECT id FROM runs").fetchall() == [("r4",)]
    assert pg_admin.execute("SELECT count(*) FROM measurements").fetchone()[0] == 3
    assert pg_admin.execute("SELECT to_regclass('measurements_y2026m03')").fetchone()[0] is None
    # Genealogy outlives the runs: the pack of a cell is still known.
    assert pg_admin.execute("SELECT count(*), count(run_id) FROM pack_components WHERE "
                            "pack_serial IN ('PK1', 'PK2')").fetchone() == (4, 0)


def test_results_export_csv_and_parquet_from_sqlite_and_postgres(tmp_path, pg):
    url, schema = pg
    config = write_station(tmp_path / "st", "EOL-X")
    ids = clock.run(run_many(config, 3), virtual=True)
    db = config.parent / "results" / "station.db"
    fwd = Forwarder(db, PgResultStore(url, schema=schema))
    assert fwd.forward_once() == 3
    fwd.stop()
    out_csv = tmp_path / "m.csv"
    done = _cli("results", "--db", str(db), "export", "--format", "csv", "-o", str(out_csv))
    assert done.returncode == 0, done.stderr
    with open(out_csv, newline="") as f:
        local = list(csv.DictReader(f))
    assert len(local) == 6 and {r["run_id"] for r in local} == set(ids)
    row = next(r for r in local if r["measurement"] == "cell_v_mean")
    assert float(row["lsl"]) == 3.2 and float(row["usl"]) == 3.4 and row["run_verdict"] == "PASS"
    pq = pytest.importorskip("pyarrow.parquet")
    out_pq = tmp_path / "m.parquet"
    done = _cli("results", "export", "--format", "parquet", "-o", str(out_pq), "--pg", url,
                "--schema", schema, "--since", "2000-01-01")
    assert done.returncode == 0, done.stderr
    table = pq.read_table(out_pq)
    assert table.num_rows == 6 and str(table.schema.field("value").type) == "double"
    remote = table.to_pylist()
    key = ("run_id", "path", "measurement", "value", "lsl", "usl", "verdict", "utc")
    assert sorted(tuple(str(r[k]) for k in key) for r in remote) == sorted(
        tuple(str(r[k]) if r[k] != "" else "None" for k in key) for r in
        [{k: (float(v) if k in ("value", "lsl", "usl") and v else v) for k, v in x.items()}
         for x in local])
    done = _cli("results", "export", "--format", "csv")
    assert done.returncode == 2 and "--output" in done.stderr


FAST_PLAN = """\
schema_version: 1
id: line-fast
version: 1.0.0
title: Line DB test plan
instruments: []
main:
  - id: cells
    station.calc: {cell_v_mean: 3.31}
    expect: {cell_v_mean: {min: 3.2, max: 3.4}}
"""


def test_station_run_with_a_dml_only_role_and_with_a_schema_typo_exits_by_verdict(
        tmp_path, pg_roles, pg_admin):
    url, schema = pg_roles.station_url, pg_roles.schema
    for name, target in (("good", schema), ("typo", schema + "x")):
        config = write_station(tmp_path / name, f"EOL-{name}", extra=(
            f"results: {{db: results/station.db, postgres_url: '{url}', "
            f"postgres_schema: {target}}}\n"))
        text = config.read_text().replace("results: {db: results/station.db, synchronous: "
                                          "NORMAL}\n", "")
        config.write_text(text)
        (config.parent / "plan.yaml").write_text(FAST_PLAN)
        done = _cli("run", str(config.parent / "plan.yaml"), "--station", str(config),
                    "--serial", f"PK-{name}", "--plain")
        assert done.returncode == 0, done.stderr  # PASS, whatever the delivery did
        assert "Traceback" not in done.stderr
        status = _cli("line", "status", "--station", str(config), "--json")
        (row,) = json.loads(status.stdout)
        if name == "good":
            assert status.returncode == 0 and row["backlog"] == 0 and row["last_error"] is None
            assert pg_admin.execute("SELECT verdict FROM runs WHERE serial = 'PK-good'"
                                    ).fetchall() == [("PASS",)]
        else:
            assert status.returncode == 1 and row["backlog"] == 1
            assert f"no schema '{target}'" in row["last_error"] and "not all delivered" in \
                done.stderr
            with psycopg.connect(PG_URL) as conn:
                assert conn.execute("SELECT to_regnamespace(%s)", (target,)).fetchone()[0] \
                    is None  # the typo created nothing


def test_components_named_by_the_mes_route_check_reach_the_genealogy(tmp_path, pg, pg_admin):
    url, schema = pg
    config = write_station(tmp_path / "st", "EOL-G", extra="mes: {type: file, folder: mes}\n")
    route = config.parent / "mes" / "route"
    route.mkdir(parents=True)
    (route / "SN0000.json").write_text(json.dumps({"allowed": True, "components": [
        {"kind": "module", "position": "1", "serial": "M-111"},
        {"kind": "cell", "position": "1.07", "serial": "C-8"}]}))
    (route / "SN0001.json").write_text(json.dumps({"allowed": True, "components": [
        {"kind": "cellz", "serial": "x"}]}))  # a bad answer: the run is refused, not guessed
    from station.runner import LineRefused

    with pytest.raises(LineRefused, match=r"components\[0\] must be"):
        clock.run(run_many(config, 2), virtual=True)
    fwd = Forwarder(config.parent / "results" / "station.db", PgResultStore(url, schema=schema))
    assert fwd.forward_once() == 1
    fwd.stop()
    rows = pg_admin.execute("SELECT pack_serial, kind, position, component_serial, source "
                            "FROM pack_components ORDER BY kind").fetchall()
    assert rows == [("SN0000", "cell", "1.07", "C-8", "mes"),
                    ("SN0000", "module", "1", "M-111", "mes")]
