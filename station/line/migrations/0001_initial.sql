-- The result record model of the SQLite store (station/results/schema.py), on PostgreSQL.
-- JSON and UTC columns are text exactly as journalled, so a record read back from here is
-- identical to the station's own; (run_id, seq) keys make every upload idempotent.
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    serial TEXT, plan_id TEXT, plan_version TEXT, plan_sha256 TEXT, plan_path TEXT,
    plan_title TEXT, variant TEXT, parameters TEXT, station_id TEXT, fixture_id TEXT,
    operator TEXT, software_version TEXT, simulated BOOLEAN, faults TEXT,
    planned_steps INTEGER, started_utc TEXT, finished_utc TEXT, duration_s DOUBLE PRECISION,
    verdict TEXT, reason TEXT,
    status TEXT NOT NULL,                       -- finished | interrupted
    source TEXT,                                -- the station journal it was uploaded from
    uploaded_utc TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX runs_serial ON runs (serial);
CREATE INDEX runs_station_started ON runs (station_id, started_utc);
CREATE TABLE instruments (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, role TEXT, driver TEXT, resource TEXT,
    maker TEXT, model TEXT, serial TEXT, firmware TEXT, calibration_due TEXT,
    shared BOOLEAN, utc TEXT, PRIMARY KEY (run_id, seq)
);
CREATE TABLE steps (
    run_id TEXT NOT NULL, path TEXT NOT NULL, attempt INTEGER NOT NULL, seq INTEGER,
    step_id TEXT, name TEXT, action TEXT, phase TEXT, outcome TEXT,
    started_utc TEXT, finished_utc TEXT, t_start DOUBLE PRECISION, duration_s DOUBLE PRECISION,
    error TEXT, PRIMARY KEY (run_id, path, attempt)
);
CREATE TABLE measurements (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, path TEXT, attempt INTEGER, name TEXT,
    value_num DOUBLE PRECISION, value_json TEXT, unit TEXT, limits TEXT, verdict TEXT,
    text TEXT, utc TEXT, t DOUBLE PRECISION, PRIMARY KEY (run_id, seq)
);
CREATE INDEX measurements_path_name ON measurements (path, name);
CREATE TABLE series (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, path TEXT, attempt INTEGER, name TEXT,
    columns TEXT, rows TEXT, utc TEXT, PRIMARY KEY (run_id, seq)
);
CREATE TABLE safe_actions (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, instrument TEXT, action TEXT, ok BOOLEAN,
    error TEXT, utc TEXT, PRIMARY KEY (run_id, seq)
);
CREATE TABLE events (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, utc TEXT,
    t DOUBLE PRECISION, data TEXT NOT NULL, PRIMARY KEY (run_id, seq)
);
