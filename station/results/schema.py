"""The result store's SQLite schema and its migrations.

One row per run, typed tables for what auditors query (instruments, steps, measurements,
series, safe-state actions) and ``events``, the raw journal of every event as JSON in the
order it happened. The typed tables are written in the same transaction as the raw event, so
they can never disagree with the journal.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable

SCHEMA_VERSION = 4

_DDL_V1 = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    serial TEXT, plan_id TEXT, plan_version TEXT, plan_sha256 TEXT, plan_path TEXT,
    plan_title TEXT, variant TEXT, parameters TEXT, station_id TEXT, fixture_id TEXT,
    operator TEXT, software_version TEXT, simulated INTEGER, faults TEXT,
    planned_steps INTEGER, started_utc TEXT, finished_utc TEXT, duration_s REAL,
    verdict TEXT, reason TEXT,
    status TEXT NOT NULL DEFAULT 'running',  -- running | finished | interrupted
    writer TEXT                               -- token of the live writer (see liveness.py)
);
CREATE INDEX IF NOT EXISTS runs_serial ON runs(serial);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE TABLE IF NOT EXISTS instruments (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, role TEXT, driver TEXT, resource TEXT,
    maker TEXT, model TEXT, serial TEXT, firmware TEXT, calibration_due TEXT,
    shared INTEGER, utc TEXT, PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL, path TEXT NOT NULL, attempt INTEGER NOT NULL, seq INTEGER,
    step_id TEXT, name TEXT, action TEXT, phase TEXT, outcome TEXT,
    started_utc TEXT, finished_utc TEXT, t_start REAL, duration_s REAL, error TEXT,
    PRIMARY KEY (run_id, path, attempt)
);
CREATE TABLE IF NOT EXISTS measurements (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, path TEXT, attempt INTEGER, name TEXT,
    value_num REAL,    -- the value when it is a number (for SQL queries), else NULL
    value_json TEXT,   -- the exact value as JSON (numbers, bools, strings alike)
    unit TEXT, limits TEXT, verdict TEXT, text TEXT, utc TEXT, t REAL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX IF NOT EXISTS measurements_name ON measurements(name);
CREATE TABLE IF NOT EXISTS series (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, path TEXT, attempt INTEGER, name TEXT,
    columns TEXT, rows TEXT, utc TEXT, PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS safe_actions (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, instrument TEXT, action TEXT, ok INTEGER,
    error TEXT, utc TEXT, PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS events (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, utc TEXT, t REAL,
    data TEXT NOT NULL, PRIMARY KEY (run_id, seq)
);
"""

# v2: a safe-state action is confirmed only when the instrument acknowledged it or a read-back
# proved it (NULL in runs recorded before v2: not known).
_DDL_V2 = "ALTER TABLE safe_actions ADD COLUMN confirmed INTEGER"

# v3: a run knows the mode of the station that ran it, the sha256 of its station config and the
# release signature it ran under (NULL in runs recorded before v3: not known); the store knows
# its own mode (one row, written by the first writer that opens it: see store.claim_mode).
_DDL_V3 = [
    "ALTER TABLE runs ADD COLUMN station_mode TEXT",
    "ALTER TABLE runs ADD COLUMN config_sha256 TEXT",
    "ALTER TABLE runs ADD COLUMN release_key TEXT",
    "ALTER TABLE runs ADD COLUMN release_signature TEXT",
    "CREATE TABLE IF NOT EXISTS store_mode (mode TEXT NOT NULL, claimed_utc TEXT NOT NULL)",
]

# v4 (record schema 2): a measurement's value and numeric limits are in the unit it names.
# Before, they were SI under a display unit: a charge of -41.9 Ah stored as -151006 (coulombs)
# labelled Ah, a SOC of 30 % as 0.3 labelled %. The rows and the journal's events are rewritten.
# UNIT_FACTORS: SI per one unit, for the units measurements named with a factor other than 1.
UNIT_FACTORS = {"Ah": 3600.0, "Wh": 3600.0, "%": 0.01, "ppm": 1e-6}
NUMERIC_LIMITS = ("min", "max", "nominal", "marginal")


def _scaled(value, factor: float):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return value
    return float(f"{value / factor:.12g}")


def _scaled_limits(limits: dict, factor: float) -> dict:
    return {k: (_scaled(x, factor) if k in NUMERIC_LIMITS else x) for k, x in limits.items()}


def _v4_units(conn: sqlite3.Connection) -> None:
    marks = ",".join("?" * len(UNIT_FACTORS))
    rows = conn.execute(f"SELECT run_id, seq, unit, value_json, limits FROM measurements WHERE unit IN ({marks})",
                        tuple(UNIT_FACTORS)).fetchall()
    for run_id, seq, unit, value_json, limits in rows:
        factor = UNIT_FACTORS[unit]
        value = _scaled(json.loads(value_json), factor) if value_json is not None else None
        new_limits = _scaled_limits(json.loads(limits), factor) if limits else limits
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None
        conn.execute("UPDATE measurements SET value_num=?, value_json=?, limits=? WHERE run_id=? AND seq=?",
                     (number, json.dumps(value, separators=(",", ":")),
                      json.dumps(new_limits, separators=(",", ":")) if limits else limits, run_id, seq))
    events = conn.execute("SELECT run_id, seq, data FROM events WHERE kind='MeasurementTaken'").fetchall()
    for run_id, seq, data in events:
        event = json.loads(data)
        factor = UNIT_FACTORS.get(event.get("unit"))
        if factor is None:
            continue
        event["value"] = _scaled(event.get("value"), factor)
        if isinstance(event.get("limits"), dict):
            event["limits"] = _scaled_limits(event["limits"], factor)
        conn.execute("UPDATE events SET data=? WHERE run_id=? AND seq=?",
                     (json.dumps(event, separators=(",", ":")), run_id, seq))


# Each version's statements (or a function of the connection), applied in order to a store
# found at an older version.
_MIGRATIONS: dict[int, list[str | Callable[[sqlite3.Connection], None]]] = {
    1: [s for s in _DDL_V1.split(";") if s.strip()], 2: [_DDL_V2], 3: _DDL_V3, 4: [_v4_units]}


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema to ``SCHEMA_VERSION``; returns the version found before (0 = new).

    Raises ``ValueError`` for a store written by a newer version of this software: reading it
    with an older schema could silently drop fields an auditor needs.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        found = row[0] or 0
        if found > SCHEMA_VERSION:
            raise ValueError(f"store schema version {found} is newer than {SCHEMA_VERSION}")
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[version]:
                if callable(statement):
                    statement(conn)
                else:
                    conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found
