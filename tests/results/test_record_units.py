"""Records in the units they claim (issue 18 item 6): charge in Ah, SOC in %, everywhere the
record goes; stores written before are migrated."""

from __future__ import annotations

import json
import sqlite3

import pytest

from station.plan import model as m, values as v
from station.plan.judge import judge
from station.results import ResultStore
from station.results.schema import _MIGRATIONS, SCHEMA_VERSION


def test_measured_si_values_are_recorded_in_their_unit_and_judged_the_same():
    value, unit = v.split_quantity(-151006.5, "Ah")  # what cycler.measure returns: coulombs
    assert unit == "Ah" and value == pytest.approx(-41.946250)
    verdict, limits, text = judge(value, unit, m.Limit(min="-50 Ah", max="0 Ah"), {})
    assert verdict == "pass" and limits["min"] == -50 and limits["max"] == 0
    assert text == "-41.9462 Ah [-50 Ah, 0 Ah] PASS"
    soc, unit = v.split_quantity(0.3, "%")
    assert (soc, unit) == (30.0, "%")
    verdict, limits, _ = judge(soc, unit, m.Limit(min="25 %", max="29 %"), {})
    assert verdict == "fail" and (limits["min"], limits["max"]) == (25.0, 29.0)
    # later expressions still see the SI quantity
    assert v.as_quantity(soc, unit) == v.literal("30 %")
    assert v.as_quantity(value, "Ah").value == pytest.approx(-151006.5)


def test_computed_quantities_are_recorded_in_their_unit():
    value, unit = v.split_quantity(v.literal("2 Ah"), "")
    assert (value, unit) == (2.0, "Ah")


def _v3_store(path):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for version in (1, 2, 3):
        for statement in _MIGRATIONS[version]:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (?)", (version,))
    conn.execute("INSERT INTO runs (id, serial, status, started_utc) VALUES ('old', 'SN1', 'finished', 'x')")
    conn.execute("INSERT INTO steps (run_id, path, attempt, seq, step_id, outcome) VALUES ('old', 'main/c', 1, 1, 'c', 'passed')")
    rows = [(1, "charge", -151006.5, "Ah", {"min": -180000.0, "max": 0.0}),
            (2, "soc", 0.3, "%", {"min": 0.25, "max": 0.35, "marginal": 0.01}),
            (3, "voltage", 401.5, "V", {"max": 403.0})]
    for seq, name, value, unit, limits in rows:
        conn.execute("INSERT INTO measurements VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                     ("old", seq, "main/c", 1, name, value, json.dumps(value), unit, json.dumps(limits),
                      "pass", "", "x", 0.0))
        event = {"run_id": "old", "kind": "MeasurementTaken", "path": "main/c", "name": name, "value": value,
                 "unit": unit, "limits": limits, "verdict": "pass", "text": "", "utc": "x", "t": 0.0}
        conn.execute("INSERT INTO events VALUES (?,?,?,?,?,?)", ("old", 10 + seq, "MeasurementTaken", "x", 0.0,
                                                                   json.dumps(event)))
    conn.commit()
    conn.close()


def test_a_v3_store_is_migrated_to_values_in_their_units(tmp_path):
    path = tmp_path / "r.db"
    _v3_store(path)
    store = ResultStore(path).open()
    try:
        rec = store.record("old")
    finally:
        store.close()
    got = {mm["name"]: (mm["value"], mm["limits"]) for s in rec["steps"] for mm in s["measurements"]}
    assert got["charge"][0] == pytest.approx(-41.946250) and got["charge"][1]["min"] == pytest.approx(-50.0)
    assert got["soc"] == (30.0, {"min": 25.0, "max": 35.0, "marginal": 1.0})
    assert got["voltage"] == (401.5, {"max": 403.0})  # SI units are unchanged
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT MAX(version) FROM schema_version").fetchone() == (SCHEMA_VERSION,)
    assert conn.execute("SELECT value_num FROM measurements WHERE name='soc'").fetchone() == (30.0,)
    events = {json.loads(d)["name"]: json.loads(d)["value"] for (d,) in
              conn.execute("SELECT data FROM events WHERE kind='MeasurementTaken'")}
    assert events["soc"] == 30.0 and events["charge"] == pytest.approx(-41.946250) and events["voltage"] == 401.5
    conn.close()
    # migrating again changes nothing (the version is recorded)
    ResultStore(path).open().close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value_num FROM measurements WHERE name='soc'").fetchone() == (30.0,)
    conn.close()
