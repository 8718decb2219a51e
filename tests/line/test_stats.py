"""`station stats`: populations, dates, SQL aggregation (SQLite and PostgreSQL with a SELECT-only
role), yield, FPY with retests, top failing steps, Cp/Cpk by hand, formats, HTML trends."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math

import pytest

from station.events import MeasurementTaken, RunFinished, RunStarted, StepFinished, StepStarted
from station.line import stats, stats_cmd
from station.line.forwarder import Forwarder
from station.line.pg_store import PgResultStore
from station.line.population import Population, open_source
from station.results import ResultStore

LIMITS = {"unit": "V", "min": 3.2, "max": 3.4}
# (run, serial, day, cell voltage, verdict): SN-A fails on day 1 and passes its retest on day 2.
RUNS = [
    ("r1", "SN-A", "2026-11-24", 3.19, "FAIL"),
    ("r2", "SN-B", "2026-11-24", 3.30, "PASS"),
    ("r3", "SN-A", "2026-11-25", 3.32, "PASS"),
    ("r4", "SN-C", "2026-11-25", 3.31, "PASS"),
    ("r5", "SN-D", "2026-11-25", 3.35, "PASS"),
]


def emit_run(store, run_id, serial, day, volts, verdict, *, limits=LIMITS, variant="car-400",
             mode="production", simulated=False, faults=(), finished=True, station="EOL-1",
             fixture="F1", name="cell_v", plan="pack-eol", hour=8):
    utc = f"{day}T{hour:02d}:00:00.000+00:00"
    emit = store.handle
    emit(RunStarted(run_id, utc, 0.0, serial, plan, "3.2.0", "t", "p.yaml", "ab" * 32, variant,
                    {}, station, fixture, "op", "0.1", simulated, list(faults), station_mode=mode))
    emit(StepStarted(run_id, utc, 0.1, "main/cells", "cells", "cells", "bms.cells", "main"))
    ok = "pass" if limits["min"] <= volts <= limits["max"] else "fail"
    emit(MeasurementTaken(run_id, utc, 0.2, "main/cells", name, volts, "V", limits, ok))
    emit(StepFinished(run_id, utc, 0.3, "main/cells", "cells",
                      "passed" if ok == "pass" else "failed", 0.2))
    if finished:
        emit(RunFinished(run_id, utc, 0.4, verdict, None, 0.4))


def _seed(path, runs=RUNS, **kw) -> None:
    with ResultStore(path) as store:
        for run in runs:
            emit_run(store, *run, **kw)


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "results.db"
    _seed(path)
    return path


def _compute(path, pop=None, **kw):
    with open_source(str(path)) as src:
        return stats.compute(src, pop, **kw)


def _args(path, **kw):
    base = dict(store=str(path), html=None, format="text", since=None, until=None, top=10)
    return argparse.Namespace(**{**base, **kw})


def _hand_cpk(values, lsl, usl):
    mean = sum(values) / len(values)
    sigma = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return (usl - lsl) / (6 * sigma), min(usl - mean, mean - lsl) / (3 * sigma)


def test_cp_cpk_match_a_hand_computation(store):
    # By hand: mean 3.294 V, sigma = sqrt(0.01492 / 4) = 0.061074 V,
    # Cp = 0.2 / (6 sigma) = 0.5458, Cpk = min(3.4 - 3.294, 3.294 - 3.2) / (3 sigma) = 0.5130.
    cp, cpk = _hand_cpk([r[3] for r in RUNS], 3.2, 3.4)
    (cap,) = _compute(store).capability
    assert (cap.group, cap.path, cap.name, cap.n, cap.lsl, cap.usl, cap.fails) == (
        ("pack-eol", "3.2.0", "car-400"), "main/cells", "cell_v", 5, 3.2, 3.4, 1)
    assert cap.cp == pytest.approx(cp, rel=1e-12) and cap.cpk == pytest.approx(cpk, rel=1e-12)
    assert (cp, cpk) == (pytest.approx(0.5458, abs=1e-4), pytest.approx(0.5130, abs=1e-4))
    out = io.StringIO()
    assert stats_cmd.stats_command(_args(store), out=out) == 0
    row = next(line for line in out.getvalue().splitlines() if "cell_v" in line).split()
    assert row[-3:] == [f"{cp:.4g}", f"{cpk:.4g}", "1"]  # the printed Cp, Cpk and fails


def test_yield_and_first_pass_yield_count_retests_right(store):
    report = _compute(store)
    by_day = {g.day: g for g in report.yields}
    d1, d2 = by_day["2026-11-24"], by_day["2026-11-25"]
    assert (d1.group, d1.runs, d1.passed, d1.serials, d1.first_pass) == (
        ("pack-eol", "3.2.0", "car-400"), 2, 1, 2, 1)
    assert d1.final_pass == 2  # SN-A passed its retest: it counts where it first came in
    # Day 2: the retest of SN-A is a run (3 of 3 passed) but not a new serial for FPY.
    assert (d2.runs, d2.passed, d2.serials, d2.first_pass) == (3, 3, 2, 2)
    assert report.top_failing == [(("pack-eol", "3.2.0", "car-400"), "main/cells", 1, 0, 5)]
    import datetime as dt

    (day2,) = _compute(store, Population(since=dt.date(2026, 11, 25))).yields
    # SN-A's retest stays a retest even when its first run is outside the date filter.
    assert (day2.day, day2.runs, day2.serials, day2.first_pass) == ("2026-11-25", 3, 2, 2)


def test_populations_are_not_mixed_and_non_production_runs_are_opt_in(tmp_path):
    path = tmp_path / "mixed.db"
    car = {"min": 340.0, "max": 370.0, "unit": "V"}
    bus = {"min": 680.0, "max": 720.0, "unit": "V"}
    with ResultStore(path) as s:
        for i, v in enumerate((355.0, 357.0, 359.0)):
            emit_run(s, f"c{i}", f"C{i}", "2026-11-24", v, "PASS", limits=car, name="bus_v")
        for i, v in enumerate((698.0, 700.0, 702.0)):
            emit_run(s, f"b{i}", f"B{i}", "2026-11-24", v, "PASS", limits=bus, name="bus_v",
                     variant="bus-700")
        # None of these is production: each must stay out unless asked for.
        emit_run(s, "sim", "X1", "2026-11-24", 500.0, "PASS", limits=car, name="bus_v", simulated=True)
        emit_run(s, "dev", "X2", "2026-11-24", 500.0, "FAIL", limits=car, name="bus_v", mode="development")
        emit_run(s, "flt", "X3", "2026-11-24", 500.0, "FAIL", limits=car, name="bus_v", faults=["open_hvil"])
        emit_run(s, "int", "X4", "2026-11-24", 500.0, None, limits=car, name="bus_v", finished=False)
    with ResultStore(path) as s:  # reopened: the run whose writer is gone is now interrupted
        assert s.recovered == ["int"]
    report = _compute(path)
    caps = {c.group[2]: c for c in report.capability}
    assert set(caps) == {"car-400", "bus-700"}
    assert (caps["car-400"].n, caps["car-400"].mean, caps["car-400"].sigma) == (3, 357.0, 2.0)
    assert (caps["bus-700"].n, caps["bus-700"].mean, caps["bus-700"].sigma) == (3, 700.0, 2.0)
    assert [(y.group[2], y.runs, y.passed, y.interrupted) for y in report.yields] == [
        ("bus-700", 3, 3, 0), ("car-400", 3, 3, 0)]
    for flag, extra in (("simulated", "PASS"), ("development", "FAIL"), ("faults", "FAIL")):
        rep = _compute(path, Population(**{flag: True}))
        car_y = next(y for y in rep.yields if y.group[2] == "car-400")
        assert (car_y.runs, car_y.passed) == (4, 3 + (extra == "PASS")), flag
    rep = _compute(path, Population(interrupted=True))
    car_y = next(y for y in rep.yields if y.group[2] == "car-400")
    assert (car_y.runs, car_y.interrupted) == (3, 1)  # counted apart, never as pass or fail
    by_station = _compute(path, Population(by=("station", "fixture")))
    assert by_station.keys[-2:] == ["station", "fixture"]
    assert {c.group[3:] for c in by_station.capability} == {("EOL-1", "F1")}


@pytest.mark.parametrize("since", ["2026-6-1", "2026-13-01", "tomorrowish", "-7x"])
def test_bad_dates_exit_2_naming_the_option(store, since):
    err = io.StringIO()
    assert stats_cmd.stats_command(_args(store, since=since), out=io.StringIO(), err=err) == 2
    assert "--since" in err.getvalue() and since in err.getvalue()


def test_relative_dates(store):
    import datetime as dt

    from station.line.population import parse_day

    today = dt.date(2026, 11, 26)
    assert parse_day("today", option="--since", today=today) == today
    assert parse_day("yesterday", option="--since", today=today) == dt.date(2026, 11, 25)
    assert parse_day("-7d", option="--since", today=today) == dt.date(2026, 11, 19)
    assert parse_day("2026-11-25", option="--since") == dt.date(2026, 11, 25)
    # A future-relative filter selects nothing, an old one everything: no silent string compare.
    out = io.StringIO()
    assert stats_cmd.stats_command(_args(store, since="2026-11-25", format="json"), out=out) == 0
    assert [y["day"] for y in json.loads(out.getvalue())["yield"]] == ["2026-11-25"]


def test_csv_and_json_formats(store, tmp_path):
    out = io.StringIO()
    assert stats_cmd.stats_command(_args(store, format="json"), out=out) == 0
    data = json.loads(out.getvalue())
    assert data["capability"][0]["n"] == 5 and data["capability"][0]["product"] == "pack-eol"
    assert data["yield"][0]["yield_pct"] == 50.0
    target = tmp_path / "cap.csv"
    assert stats_cmd.stats_command(_args(store, format="csv", output=str(target)), out=io.StringIO()) == 0
    (row,) = list(csv.DictReader(target.open()))
    assert (row["variant"], row["measurement"], row["n"], float(row["mean"])) == (
        "car-400", "cell_v", "5", pytest.approx(3.294))


def test_rows_read_do_not_grow_with_the_number_of_runs(tmp_path, monkeypatch):
    """Aggregation happens in SQL: 10× the runs, the same number of rows reach Python."""
    from station.line import population

    counts = []
    real = population.Source.stream

    def counting(self, sql, params=None, batch=5000):
        for row in real(self, sql, params, batch):
            counts[-1] += 1
            yield row

    monkeypatch.setattr(population.Source, "stream", counting)
    for n in (20, 200):
        path = tmp_path / f"n{n}.db"
        runs = [(f"r{i}", f"S{i}", "2026-11-24", 3.2 + 0.2 * ((i * 37) % 100) / 100,
                 "PASS") for i in range(n)]
        _seed(path, runs)
        counts.append(0)
        report = _compute(path)
        assert report.capability[0].n == n
    assert counts[0] == counts[1] and counts[0] <= 5


def test_html_export_has_a_trend_plot_per_measurement(store, tmp_path):
    html = tmp_path / "out" / "stats.html"
    assert stats_cmd.stats_command(_args(store, html=str(html)), out=io.StringIO()) == 0
    text = html.read_text()
    assert text.count('<svg class="trend"') == 1
    assert 'data-measurement="pack-eol 3.2.0 car-400 main/cells cell_v"' in text
    assert 'class="lsl"' in text and 'class="usl"' in text and "http://" not in text.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert text.count("<circle") == 5


def test_unreadable_store_exits_2(tmp_path):
    err = io.StringIO()
    assert stats_cmd.stats_command(_args(tmp_path / "missing.db"), out=io.StringIO(), err=err) == 2
    assert "missing.db" in err.getvalue()


def test_stats_over_postgres_equal_stats_over_the_station_store(store, pg_roles):
    schema = pg_roles.schema
    fwd = Forwarder(store, PgResultStore(pg_roles.station_url, schema=schema))
    assert fwd.forward_once() == len(RUNS)
    fwd.stop()
    # `station stats` reads with the SELECT-only reader role (read-only transactions, no DDL).
    local = _compute(store)
    with open_source(pg_roles.reader_url, schema) as src:
        remote = stats.compute(src, points=10)
    assert remote.capability[0].cpk == pytest.approx(local.capability[0].cpk, rel=1e-12)
    assert remote.capability[0].sigma == pytest.approx(local.capability[0].sigma, rel=1e-12)
    assert [vars(g) for g in remote.yields] == [vars(g) for g in local.yields]
    assert remote.top_failing == local.top_failing
    assert len(remote.capability[0].trend) == 5
    # PostgreSQL takes the newest values per measurement by index, SQLite by a window: same plot.
    local_trend = _compute(store, points=10).capability[0].trend
    assert [v for _, v in remote.capability[0].trend] == [v for _, v in local_trend]
    assert [v for _, v in _compute(store, points=3).capability[0].trend] == [3.32, 3.31, 3.35]
    out = io.StringIO()
    args = _args(pg_roles.reader_url, schema=schema, since="2026-11-25", format="json")
    assert stats_cmd.stats_command(args, out=out) == 0
    assert [y["runs"] for y in json.loads(out.getvalue())["yield"]] == [3]


def test_postgres_sessions_are_read_only_even_for_an_admin(pg_roles):
    """No DDL or DML can happen through an analysis session, whatever the role may do."""
    import psycopg

    with open_source(pg_roles.admin_url, pg_roles.schema) as src, \
            pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        src.conn.execute("CREATE TABLE h22_should_not_exist (a integer)")


def test_a_role_with_only_select_runs_every_analysis(store, pg_roles, pg_admin, tmp_path):
    """An h22_ role granted SELECT on the tables and nothing else (created and dropped here)."""
    import subprocess
    import sys

    from tests.line.conftest import role_url
    from tests.line.line_helpers import random_name

    fwd = Forwarder(store, PgResultStore(pg_roles.station_url, schema=pg_roles.schema))
    assert fwd.forward_once() == len(RUNS)
    fwd.stop()
    role = random_name("h22_select_")
    pg_admin.execute(f"CREATE ROLE {role} LOGIN")
    try:
        pg_admin.execute(f"GRANT USAGE ON SCHEMA {pg_roles.schema} TO {role}")
        pg_admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {pg_roles.schema} TO {role}")
        url = role_url(role)
        limits = tmp_path / "l.yaml"
        limits.write_text("limits:\n  cells.cell_v: {min: 3.15 V, max: 3.33 V}\n")
        for cmd in (["stats", url, "--schema", pg_roles.schema, "--format", "json"],
                    ["rejudge", url, "--schema", pg_roles.schema, "--limits", str(limits),
                     "--format", "json"]):
            proc = subprocess.run([sys.executable, "-m", "station.cli", *cmd], capture_output=True,
                                  text=True, timeout=120)
            assert proc.returncode == 0, proc.stderr
            data = json.loads(proc.stdout)
            if cmd[0] == "rejudge":  # the same verdict changes as over the station's SQLite store
                assert {(c["run_id"], c["after"]) for c in data["changed_runs"]} == {
                    ("r1", "PASS"), ("r5", "FAIL")}
            else:
                assert data["capability"][0]["n"] == 5
        proc = subprocess.run([sys.executable, "-m", "station.cli", "stats", url, "--schema",
                               pg_roles.schema, "--since", "yesterdayish"], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2 and "--since 'yesterdayish'" in proc.stderr
        assert "Traceback" not in proc.stderr
    finally:
        pg_admin.execute(f"DROP OWNED BY {role}")
        pg_admin.execute(f"DROP ROLE {role}")


def test_an_empty_population_says_why(tmp_path):
    path = tmp_path / "dev.db"
    _seed(path, mode="development")
    out = io.StringIO()
    assert stats_cmd.stats_command(_args(path), out=out) == 0
    assert "No run matches. 5 runs of these days are not in the population" in out.getvalue()
    out = io.StringIO()
    assert stats_cmd.stats_command(_args(path, include_development=True), out=out) == 0
    assert "No run matches" not in out.getvalue() and "cell_v" in out.getvalue()


def test_relative_days_on_the_real_command_line(store):
    import subprocess
    import sys

    run = lambda *a: subprocess.run([sys.executable, "-m", "station.cli", "stats", str(store), *a],  # noqa: E731
                                    capture_output=True, text=True, timeout=120)
    proc = run("--since", "-100000d", "--until", "today", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert sum(y["runs"] for y in json.loads(proc.stdout)["yield"]) == 5
    proc = run("--since", "-7x")
    assert proc.returncode == 2 and "--since" in proc.stderr
