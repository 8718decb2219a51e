-- breaking: renames the v1 tables and rebuilds them; stations of the v1/v2 software cannot write here.
-- A schema for a year of a line (~1 M runs): typed times (timestamptz), JSON as jsonb,
-- numeric limits as columns, foreign keys to runs, the indexes the line's questions need,
-- monthly partitions of every per-run table (keyed by the run's start, so one run's rows live
-- in one month and retention drops whole months), genealogy, and views for BI tools.
-- Rows of the tables of versions 1-4 are carried over. Applied only by `station db migrate` (an admin role).
--
-- The raw journal is kept only for the event kinds no typed table holds (RunStarted,
-- monitor trips, prompts, log messages, kinds added later); the others are rebuilt from the
-- typed rows, which hold every one of their fields. runs.event_count keeps the journal length.

ALTER TABLE runs RENAME TO runs_v1;
ALTER INDEX runs_pkey RENAME TO runs_v1_pkey;
ALTER TABLE instruments RENAME TO instruments_v1;
ALTER INDEX instruments_pkey RENAME TO instruments_v1_pkey;
ALTER TABLE steps RENAME TO steps_v1;
ALTER INDEX steps_pkey RENAME TO steps_v1_pkey;
ALTER TABLE measurements RENAME TO measurements_v1;
ALTER INDEX measurements_pkey RENAME TO measurements_v1_pkey;
ALTER TABLE series RENAME TO series_v1;
ALTER INDEX series_pkey RENAME TO series_v1_pkey;
ALTER TABLE safe_actions RENAME TO safe_actions_v1;
ALTER INDEX safe_actions_pkey RENAME TO safe_actions_v1_pkey;
ALTER TABLE events RENAME TO events_v1;
ALTER INDEX events_pkey RENAME TO events_v1_pkey;

-- Who this database is: forwarders mark runs uploaded per identity, not per URL spelling.
CREATE TABLE line_identity (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    created TIMESTAMPTZ NOT NULL DEFAULT now(),
    one_row BOOLEAN NOT NULL DEFAULT true UNIQUE CHECK (one_row)
);
INSERT INTO line_identity DEFAULT VALUES;

CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    serial TEXT, plan_id TEXT, plan_version TEXT, plan_sha256 TEXT, plan_path TEXT,
    plan_title TEXT, variant TEXT, parameters JSONB, station_id TEXT, fixture_id TEXT,
    operator TEXT, software_version TEXT, simulated BOOLEAN, faults JSONB,
    planned_steps INTEGER,
    started_utc TIMESTAMPTZ NOT NULL,          -- the partition key of every per-run table
    finished_utc TIMESTAMPTZ, last_event_utc TIMESTAMPTZ, duration_s DOUBLE PRECISION,
    verdict TEXT CHECK (verdict IN ('PASS', 'FAIL', 'ERROR', 'ABORTED')), reason TEXT,
    status TEXT NOT NULL CHECK (status IN ('finished', 'interrupted')),
    source TEXT,                               -- station:journal it was uploaded from
    mes_transaction_id TEXT,
    station_mode TEXT,                         -- development | production (when recorded)
    config_sha256 TEXT,                        -- the station config the run ran under
    release_key TEXT, release_signature TEXT,  -- the signed release it ran under
    event_count INTEGER NOT NULL DEFAULT 0,    -- events journalled for the run
    uploaded_utc TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX runs_serial_ix ON runs (serial, started_utc);
CREATE INDEX runs_plan_started_ix ON runs (plan_id, started_utc);
CREATE INDEX runs_station_started_ix ON runs (station_id, started_utc);
CREATE INDEX runs_started_ix ON runs (started_utc);
CREATE INDEX runs_day_ix ON runs (((started_utc AT TIME ZONE 'UTC')::date), station_id);
CREATE INDEX runs_mes_transaction_ix ON runs (mes_transaction_id);

CREATE TABLE instruments (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    run_started TIMESTAMPTZ NOT NULL, seq INTEGER NOT NULL,
    role TEXT, driver TEXT, resource TEXT, maker TEXT, model TEXT, serial TEXT, firmware TEXT,
    calibration_due TEXT, shared BOOLEAN, utc TIMESTAMPTZ,
    PRIMARY KEY (run_id, seq, run_started)
) PARTITION BY RANGE (run_started);
CREATE INDEX instruments_serial_ix ON instruments (serial);

CREATE TABLE steps (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    run_started TIMESTAMPTZ NOT NULL, path TEXT NOT NULL, attempt INTEGER NOT NULL,
    seq INTEGER, step_id TEXT, name TEXT, action TEXT, phase TEXT, outcome TEXT,
    started_utc TIMESTAMPTZ, finished_utc TIMESTAMPTZ, t_start DOUBLE PRECISION,
    duration_s DOUBLE PRECISION, error TEXT,
    PRIMARY KEY (run_id, path, attempt, run_started)
) PARTITION BY RANGE (run_started);
CREATE INDEX steps_failed_ix ON steps (run_started, path) WHERE outcome IN ('failed', 'error');

CREATE TABLE measurements (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    run_started TIMESTAMPTZ NOT NULL, seq INTEGER NOT NULL,
    path TEXT, attempt INTEGER, name TEXT,
    value_num DOUBLE PRECISION, value_json JSONB, unit TEXT, limits JSONB,
    lsl NUMERIC, usl NUMERIC,                  -- the judged min / max, SI, when numeric
    verdict TEXT, text TEXT, utc TIMESTAMPTZ, t DOUBLE PRECISION,
    PRIMARY KEY (run_id, seq, run_started)
) PARTITION BY RANGE (run_started);
CREATE INDEX measurements_trend_ix ON measurements (path, name, utc);

CREATE TABLE series (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    run_started TIMESTAMPTZ NOT NULL, seq INTEGER NOT NULL,
    path TEXT, attempt INTEGER, name TEXT, columns JSONB, rows JSONB, utc TIMESTAMPTZ,
    PRIMARY KEY (run_id, seq, run_started)
) PARTITION BY RANGE (run_started);

CREATE TABLE safe_actions (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    run_started TIMESTAMPTZ NOT NULL, seq INTEGER NOT NULL,
    instrument TEXT, action TEXT, ok BOOLEAN, error TEXT, utc TIMESTAMPTZ, confirmed BOOLEAN,
    PRIMARY KEY (run_id, seq, run_started)
) PARTITION BY RANGE (run_started);

CREATE TABLE events (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    run_started TIMESTAMPTZ NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
    utc TIMESTAMPTZ, t DOUBLE PRECISION, data JSONB NOT NULL,
    PRIMARY KEY (run_id, seq, run_started)
) PARTITION BY RANGE (run_started);

-- Genealogy: what went into a pack. Kept when retention drops the runs (run_id set NULL):
-- a field return years later still finds the pack of a cell.
CREATE TABLE pack_components (
    pack_serial TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('bms', 'module', 'cell', 'other')),
    position TEXT NOT NULL DEFAULT '',         -- e.g. module 3, or the DID / scan field
    component_serial TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('bms_did', 'mes', 'scan')),
    run_id TEXT REFERENCES runs (id) ON DELETE SET NULL,
    recorded_utc TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (pack_serial, kind, position, source)
);
CREATE INDEX pack_components_component_ix ON pack_components (component_serial);
CREATE INDEX pack_components_run_ix ON pack_components (run_id);

-- Monthly partitions (admin only: stations hold no CREATE right). A DEFAULT partition per
-- table catches a run outside every month made so far (a clock years off); creating that
-- month later moves its rows out of the default first.
CREATE FUNCTION line_partitioned_tables() RETURNS TEXT[] LANGUAGE sql IMMUTABLE AS
$$ SELECT ARRAY['instruments', 'steps', 'measurements', 'series', 'safe_actions', 'events'] $$;

CREATE FUNCTION line_ensure_month(month DATE) RETURNS INTEGER LANGUAGE plpgsql AS $$
DECLARE
    first DATE := date_trunc('month', month)::date;
    next DATE := (date_trunc('month', month) + interval '1 month')::date;
    tbl TEXT;
    part TEXT;
    made INTEGER := 0;
    ns TEXT := current_schema();
BEGIN
    FOREACH tbl IN ARRAY line_partitioned_tables() LOOP
        IF to_regclass(format('%I.%I', ns, tbl || '_default')) IS NULL THEN
            EXECUTE format('CREATE TABLE %I.%I PARTITION OF %I.%I DEFAULT',
                           ns, tbl || '_default', ns, tbl);
        END IF;
        part := format('%s_y%sm%s', tbl, to_char(first, 'YYYY'), to_char(first, 'MM'));
        CONTINUE WHEN to_regclass(format('%I.%I', ns, part)) IS NOT NULL;
        EXECUTE format('CREATE TABLE %I.%I (LIKE %I.%I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                       ns, part, ns, tbl);
        EXECUTE format('WITH moved AS (DELETE FROM %I.%I WHERE run_started >= %L AND '
                       'run_started < %L RETURNING *) INSERT INTO %I.%I SELECT * FROM moved',
                       ns, tbl || '_default', first, next, ns, part);
        EXECUTE format('ALTER TABLE %I.%I ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
                       ns, tbl, ns, part, first, next);
        made := made + 1;
    END LOOP;
    RETURN made;
END $$;

-- Partitions for the months the v1 rows need, and this month.
SELECT line_ensure_month(m::date) FROM (
    SELECT DISTINCT date_trunc('month', started_utc::timestamptz) AS m FROM runs_v1
    WHERE started_utc IS NOT NULL
    UNION SELECT date_trunc('month', now())) months;

-- Carry the v1 rows over (text times and JSON → typed columns).
INSERT INTO runs (id, serial, plan_id, plan_version, plan_sha256, plan_path, plan_title,
                  variant, parameters, station_id, fixture_id, operator, software_version,
                  simulated, faults, planned_steps, started_utc, finished_utc, last_event_utc,
                  duration_s, verdict, reason, status, source, mes_transaction_id, station_mode,
                  config_sha256, release_key, release_signature, event_count, uploaded_utc)
SELECT r.id, r.serial, r.plan_id, r.plan_version, r.plan_sha256, r.plan_path, r.plan_title,
       r.variant, r.parameters::jsonb, r.station_id, r.fixture_id, r.operator,
       r.software_version, r.simulated, r.faults::jsonb, r.planned_steps,
       COALESCE(r.started_utc::timestamptz, r.uploaded_utc), r.finished_utc::timestamptz,
       (SELECT e.utc::timestamptz FROM events_v1 e WHERE e.run_id = r.id ORDER BY seq DESC LIMIT 1),
       r.duration_s, r.verdict, r.reason, r.status, r.source, r.mes_transaction_id,
       r.station_mode, r.config_sha256, r.release_key, r.release_signature,
       (SELECT count(*) FROM events_v1 e WHERE e.run_id = r.id), r.uploaded_utc
FROM runs_v1 r;
INSERT INTO instruments SELECT i.run_id, r.started_utc, i.seq, i.role, i.driver, i.resource,
       i.maker, i.model, i.serial, i.firmware, i.calibration_due, i.shared, i.utc::timestamptz
FROM instruments_v1 i JOIN runs r ON r.id = i.run_id;
INSERT INTO steps SELECT s.run_id, r.started_utc, s.path, s.attempt, s.seq, s.step_id, s.name,
       s.action, s.phase, s.outcome, s.started_utc::timestamptz, s.finished_utc::timestamptz,
       s.t_start, s.duration_s, s.error
FROM steps_v1 s JOIN runs r ON r.id = s.run_id;
INSERT INTO measurements SELECT m.run_id, r.started_utc, m.seq, m.path, m.attempt, m.name,
       m.value_num, m.value_json::jsonb, m.unit, m.limits::jsonb,
       CASE WHEN jsonb_typeof(m.limits::jsonb -> 'min') = 'number'
            THEN (m.limits::jsonb ->> 'min')::numeric END,
       CASE WHEN jsonb_typeof(m.limits::jsonb -> 'max') = 'number'
            THEN (m.limits::jsonb ->> 'max')::numeric END,
       m.verdict, m.text, m.utc::timestamptz, m.t
FROM measurements_v1 m JOIN runs r ON r.id = m.run_id;
INSERT INTO series SELECT s.run_id, r.started_utc, s.seq, s.path, s.attempt, s.name,
       s.columns::jsonb, s.rows::jsonb, s.utc::timestamptz
FROM series_v1 s JOIN runs r ON r.id = s.run_id;
INSERT INTO safe_actions SELECT a.run_id, r.started_utc, a.seq, a.instrument, a.action, a.ok,
       a.error, a.utc::timestamptz, a.confirmed
FROM safe_actions_v1 a JOIN runs r ON r.id = a.run_id;
INSERT INTO events SELECT e.run_id, r.started_utc, e.seq, e.kind, e.utc::timestamptz, e.t,
       e.data::jsonb
FROM events_v1 e JOIN runs r ON r.id = e.run_id
WHERE e.kind NOT IN ('InstrumentIdentified', 'StepStarted', 'StepFinished', 'MeasurementTaken',
                     'SeriesRecorded', 'SafeStateAction', 'RunFinished');
DROP TABLE events_v1, safe_actions_v1, series_v1, measurements_v1, steps_v1, instruments_v1,
           runs_v1;

-- Views for Grafana / BI tools (read with the SELECT-only reader role).
CREATE VIEW v_runs AS
SELECT id AS run_id, serial, station_id, fixture_id, plan_id, plan_version, variant,
       plan_id || COALESCE('/' || variant, '') AS product, operator, started_utc, finished_utc,
       (started_utc AT TIME ZONE 'UTC')::date AS day_utc, duration_s, verdict, reason, status,
       mes_transaction_id, station_mode, simulated
FROM runs;

-- Yield per station, product and UTC day (interrupted runs counted apart, never as pass/fail).
CREATE VIEW v_yield_daily AS
SELECT day_utc, station_id, product,
       count(*) FILTER (WHERE verdict IS NOT NULL) AS runs,
       count(*) FILTER (WHERE verdict = 'PASS') AS passed,
       count(*) FILTER (WHERE verdict = 'FAIL') AS failed,
       count(*) FILTER (WHERE verdict IN ('ERROR', 'ABORTED')) AS errored,
       count(*) FILTER (WHERE verdict IS NULL) AS interrupted,
       round(100.0 * count(*) FILTER (WHERE verdict = 'PASS')
             / NULLIF(count(*) FILTER (WHERE verdict IS NOT NULL), 0), 2) AS yield_pct
FROM v_runs GROUP BY day_utc, station_id, product;

-- First-pass yield: a serial counts in the day, station and product of its first finished run
-- (ties by run id, as `station stats`), with whether that run passed and whether its last one
-- did. Written per run with index probes, so a day filter reads only that day's runs.
CREATE VIEW v_first_pass AS
SELECT r.day_utc, r.station_id, r.product, count(*) AS serials,
       count(*) FILTER (WHERE r.verdict = 'PASS') AS first_pass,
       count(*) FILTER (WHERE last.verdict = 'PASS') AS final_pass,
       round(100.0 * count(*) FILTER (WHERE r.verdict = 'PASS') / count(*), 2) AS fpy_pct
FROM v_runs r
CROSS JOIN LATERAL (SELECT l.verdict FROM runs l WHERE l.serial = r.serial
                    AND l.verdict IS NOT NULL
                    ORDER BY l.started_utc DESC, l.id DESC LIMIT 1) last
WHERE r.verdict IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM runs e WHERE e.serial = r.serial AND e.verdict IS NOT NULL
    AND (e.started_utc, e.id) < (r.started_utc, r.run_id))
GROUP BY r.day_utc, r.station_id, r.product;

-- One row per numeric measurement with its limits as numbers: trends, SPC, Cp/Cpk.
CREATE VIEW v_measurements AS
SELECT m.run_id, r.serial, r.station_id, r.fixture_id, r.plan_id, r.variant, m.path, m.attempt,
       m.name, m.value_num AS value, m.unit, m.lsl, m.usl, m.verdict, m.utc, m.run_started
FROM measurements m JOIN runs r ON r.id = m.run_id;

-- The last attempt of every step that failed or errored, per day, station and step.
CREATE VIEW v_step_failures AS
SELECT (s.run_started AT TIME ZONE 'UTC')::date AS day_utc, r.station_id, r.plan_id, s.path,
       count(*) FILTER (WHERE s.outcome = 'failed') AS failed,
       count(*) FILTER (WHERE s.outcome = 'error') AS errored
FROM steps s JOIN runs r ON r.id = s.run_id
WHERE s.outcome IN ('failed', 'error') AND NOT EXISTS (
    SELECT 1 FROM steps later WHERE later.run_id = s.run_id AND later.path = s.path
    AND later.run_started = s.run_started AND later.attempt > s.attempt)
GROUP BY 1, 2, 3, 4;

CREATE VIEW v_pack_genealogy AS
SELECT c.pack_serial, c.kind, c.position, c.component_serial, c.source, c.recorded_utc,
       c.run_id, r.verdict, r.station_id
FROM pack_components c LEFT JOIN runs r ON r.id = c.run_id;
