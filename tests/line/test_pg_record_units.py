"""Line database migration 0006 (issue 18 item 6): measurements stored as SI numbers under Ah
and % are rewritten in the unit they name, with their limits and journalled events; the real
PostgreSQL on loopback, in a schema of this test's own."""

from __future__ import annotations

import datetime as dt
import json

import pytest

psycopg = pytest.importorskip("psycopg")

from station.line import pg_migrate  # noqa: E402
from tests.line.line_helpers import PG_URL, random_name  # noqa: E402


@pytest.fixture
def schema():
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {exc}")
    name = random_name("h18_units_")
    yield name
    admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    admin.close()


def test_0006_rewrites_si_values_in_their_units(schema, monkeypatch):
    every = pg_migrate.migrations()
    assert every[-1].name == "record_units" and every[-1].breaking
    started = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with psycopg.connect(PG_URL, autocommit=True, options=f"-c search_path={schema}") as conn:
        monkeypatch.setattr(pg_migrate, "migrations", lambda: every[:-1])
        pg_migrate.migrate(conn, schema)
        conn.execute("INSERT INTO runs (id, serial, started_utc, status) VALUES ('r1', 'SN1', %s, 'finished')",
                     (started,))
        rows = [(1, "charge", -151006.5, "Ah", {"min": -180000.0, "max": 0.0, "unit": "Ah"}),
                (2, "soc", 0.3, "%", {"min": 0.25, "max": 0.35, "marginal": 0.01}),
                (3, "voltage", 401.5, "V", {"max": 403.0})]
        for seq, name, value, unit, limits in rows:
            conn.execute("INSERT INTO measurements (run_id, run_started, seq, path, attempt, name, value_num, "
                         "value_json, unit, limits, lsl, usl, verdict) VALUES "
                         "('r1', %s, %s, 'main/c', 1, %s, %s, %s, %s, %s, %s, %s, 'pass')",
                         (started, seq, name, value, json.dumps(value), unit, json.dumps(limits),
                          limits.get("min"), limits.get("max")))
            event = {"path": "main/c", "name": name, "value": value, "unit": unit, "limits": limits}
            conn.execute("INSERT INTO events (run_id, run_started, seq, kind, data) VALUES "
                         "('r1', %s, %s, 'MeasurementTaken', %s)", (started, 10 + seq, json.dumps(event)))
        monkeypatch.setattr(pg_migrate, "migrations", lambda: every)
        assert pg_migrate.migrate(conn, schema) == [every[-1].version]
        got = {r[0]: r[1:] for r in conn.execute(
            "SELECT name, value_num, value_json, limits, lsl::float8, usl::float8 FROM measurements")}
        assert got["soc"] == (30.0, 30.0, {"min": 25.0, "max": 35.0, "marginal": 1.0}, 25.0, 35.0)
        assert got["charge"][0] == pytest.approx(-41.94625) and got["charge"][2]["min"] == pytest.approx(-50.0)
        assert got["charge"][2]["unit"] == "Ah"  # not a number: kept
        assert got["voltage"] == (401.5, 401.5, {"max": 403.0}, None, 403.0)
        events = {d["name"]: d for (d,) in conn.execute("SELECT data FROM events")}
        assert events["soc"]["value"] == 30.0 and events["soc"]["limits"]["max"] == 35.0
        assert events["voltage"]["value"] == 401.5
