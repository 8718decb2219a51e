"""`station stats`: yield, FPY with retests, top failing steps, Cp/Cpk by hand, HTML trends."""

from __future__ import annotations

import argparse
import io
import math

import pytest

from station.events import MeasurementTaken, RunFinished, RunStarted, StepFinished, StepStarted
from station.line import stats
from station.line.forwarder import Forwarder
from station.line.pg_store import PgResultStore
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


def _seed(path) -> None:
    with ResultStore(path) as store:
        for run_id, serial, day, volts, verdict in RUNS:
            utc = f"{day}T08:00:00.000+00:00"
            emit = store.handle
            emit(RunStarted(run_id, utc, 0.0, serial, "pack-eol", "3.2.0", "t", "p.yaml",
                            "ab" * 32, "car-400", {}, "EOL-1", "F1", "op", "0.1", True))
            emit(StepStarted(run_id, utc, 0.1, "main/cells", "cells", "cells", "bms.cells", "main"))
            ok = "pass" if 3.2 <= volts <= 3.4 else "fail"
            emit(MeasurementTaken(run_id, utc, 0.2, "main/cells", "cell_v", volts, "V", LIMITS, ok))
            emit(StepFinished(run_id, utc, 0.3, "main/cells", "cells",
                              "passed" if ok == "pass" else "failed", 0.2))
            emit(RunFinished(run_id, utc, 0.4, verdict, None, 0.4))


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "results.db"
    _seed(path)
    return path


def _hand_cpk(values, lsl, usl):
    mean = sum(values) / len(values)
    sigma = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return (usl - lsl) / (6 * sigma), min(usl - mean, mean - lsl) / (3 * sigma)


def test_cp_cpk_match_a_hand_computation(store):
    # By hand: mean 3.294 V, sigma = sqrt(0.01492 / 4) = 0.061074 V,
    # Cp = 0.2 / (6 sigma) = 0.5458, Cpk = min(3.4 - 3.294, 3.294 - 3.2) / (3 sigma) = 0.5130.
    cp, cpk = _hand_cpk([r[3] for r in RUNS], 3.2, 3.4)
    report = stats.compute(stats.load(str(store)))
    (cap,) = report.capability
    assert (cap.path, cap.name, cap.n, cap.lsl, cap.usl, cap.fails) == (
        "main/cells", "cell_v", 5, 3.2, 3.4, 1)
    assert cap.cp == pytest.approx(cp, rel=1e-12) and cap.cpk == pytest.approx(cpk, rel=1e-12)
    assert (cp, cpk) == (pytest.approx(0.5458, abs=1e-4), pytest.approx(0.5130, abs=1e-4))
    out = io.StringIO()
    args = argparse.Namespace(store=str(store), html=None)
    assert stats.stats_command(args, out=out) == 0
    row = next(line for line in out.getvalue().splitlines() if "cell_v" in line).split()
    assert row[-3:] == [f"{cp:.4g}", f"{cpk:.4g}", "1"]  # the printed Cp, Cpk and fails


def test_yield_and_first_pass_yield_count_retests_right(store):
    report = stats.compute(stats.load(str(store)))
    by_day = {g.day: g for g in report.yields}
    d1, d2 = by_day["2026-11-24"], by_day["2026-11-25"]
    assert (d1.product, d1.runs, d1.passed, d1.serials, d1.first_pass) == ("pack-eol/car-400",
                                                                           2, 1, 2, 1)
    assert d1.final_pass == 2  # SN-A passed its retest: it counts where it first came in
    # Day 2: the retest of SN-A is a run (3 of 3 passed) but not a new serial for FPY.
    assert (d2.runs, d2.passed, d2.serials, d2.first_pass) == (3, 3, 2, 2)
    assert report.top_failing == [("main/cells", 1, 0, 5)]
    everything = stats.load(str(store))
    only = stats.compute(everything.filtered(since="2026-11-25"), history=everything)
    (day2,) = only.yields
    # SN-A's retest stays a retest even when its first run is outside the date filter.
    assert (day2.day, day2.runs, day2.serials, day2.first_pass) == ("2026-11-25", 3, 2, 2)


def test_html_export_has_a_trend_plot_per_measurement(store, tmp_path):
    html = tmp_path / "out" / "stats.html"
    args = argparse.Namespace(store=str(store), html=str(html))
    assert stats.stats_command(args, out=io.StringIO()) == 0
    text = html.read_text()
    assert text.count('<svg class="trend"') == 1 and 'data-measurement="main/cells cell_v"' in text
    assert 'class="lsl"' in text and 'class="usl"' in text and "http://" not in text.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert text.count("<circle") == 5


def test_unreadable_store_exits_2(tmp_path):
    err = io.StringIO()
    args = argparse.Namespace(store=str(tmp_path / "missing.db"), html=None)
    assert stats.stats_command(args, out=io.StringIO(), err=err) == 2
    assert "missing.db" in err.getvalue()


def test_stats_over_postgres_equal_stats_over_the_station_store(store, pg_roles):
    schema = pg_roles.schema
    fwd = Forwarder(store, PgResultStore(pg_roles.station_url, schema=schema))
    assert fwd.forward_once() == len(RUNS)
    fwd.stop()
    # `station stats` reads with the SELECT-only reader role.
    local, remote = (stats.compute(d) for d in (stats.load(str(store)),
                                                stats.load(pg_roles.reader_url, schema)))
    assert remote.capability[0].cpk == pytest.approx(local.capability[0].cpk, rel=1e-12)
    assert [vars(g) for g in remote.yields] == [vars(g) for g in local.yields]
