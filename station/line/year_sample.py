"""A year-shaped sample of a line in PostgreSQL, for sizing and benchmarks (admin role).

The shape of every generated run is a real one: a template run from a station journal (by
default ``pack_eol`` on the simulator: ~68 measurements, 41 steps, 6 recorded curves, 14
safe-state actions) is ingested once through the station's own path (``PgResultStore``),
then copied server-side, set-based (``INSERT … SELECT`` over ``generate_series``; no row
crosses the network, none is inserted one by one) into ``runs`` runs spread evenly over
``days`` days from ``start``, across ``stations`` stations and two fixtures each, with:

- numeric values varied ±1 % around the template's, limits kept;
- ``fail_rate`` of the runs FAIL on one measurement (its step failed), and each failed
  serial retested once later (so first-pass yield < final yield);
- genealogy per pack: the BMS serial and ``modules`` module serials.

Monthly partitions are made first (``line_ensure_month``), then each month is generated in
one transaction, then ``ANALYZE``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import psycopg

from .pg_rows import JournalEvent
from .pg_store import PgResultStore

TEMPLATE_ID = "template"


def load_template(conn: psycopg.Connection, url: str, schema: str,
                  events: list[JournalEvent]) -> None:
    """Ingest the template run through the station's own writer."""
    conn.execute("DELETE FROM runs WHERE id = %s", (TEMPLATE_ID,))
    with PgResultStore(url, schema=schema, application_name="eol-year-sample") as store:
        store.ingest(TEMPLATE_ID, events, status="finished", source="template")


_GEN = """
CREATE TEMP TABLE gen ON COMMIT DROP AS
SELECT 'y' || lpad(n::text, 8, '0') AS id,
       %(start)s::timestamptz + (n - 1) * %(step)s::interval AS started,
       'EOL-' || (1 + n %% %(stations)s) AS station_id,
       'F' || (1 + (n / %(stations)s) %% 2) AS fixture_id,
       CASE WHEN n %% %(retest_every)s = 0 THEN 'PK' || lpad((n - %(retest_gap)s)::text, 8, '0')
            ELSE 'PK' || lpad(n::text, 8, '0') END AS serial,
       CASE WHEN (n + %(retest_gap)s) %% %(retest_every)s = 0 THEN
            (SELECT array_agg(seq ORDER BY seq) FROM measurements
             WHERE run_id = 'template' AND value_num IS NOT NULL)[
             1 + (n * 7919) %% (SELECT count(*) FROM measurements
                                 WHERE run_id = 'template' AND value_num IS NOT NULL)]
       END AS fail_seq
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n;
"""

_RUNS = """
INSERT INTO runs (id, serial, plan_id, plan_version, plan_sha256, plan_path, plan_title, variant,
    parameters, station_id, fixture_id, operator, software_version, simulated, faults,
    planned_steps, started_utc, finished_utc, last_event_utc, duration_s, verdict, reason,
    status, source, mes_transaction_id, station_mode, config_sha256, event_count)
SELECT g.id, g.serial, t.plan_id, t.plan_version, t.plan_sha256, t.plan_path, t.plan_title,
    t.variant, t.parameters, g.station_id, g.fixture_id, 'op' || (1 + hashtext(g.id) %% 40 + 40),
    t.software_version, false, t.faults, t.planned_steps, g.started,
    g.started + (t.finished_utc - t.started_utc), g.started + (t.last_event_utc - t.started_utc),
    t.duration_s, CASE WHEN g.fail_seq IS NULL THEN t.verdict ELSE 'FAIL' END,
    CASE WHEN g.fail_seq IS NULL THEN t.reason ELSE 'measurement out of limits' END,
    'finished', g.station_id || ':sample', 'TX' || g.id, 'production', t.config_sha256,
    t.event_count
FROM gen g CROSS JOIN runs t WHERE t.id = 'template';
"""

_CHILDREN = {
    "instruments": """
INSERT INTO instruments (run_id, run_started, seq, role, driver, resource, maker, model, serial,
    firmware, calibration_due, shared, utc)
SELECT g.id, g.started, i.seq, i.role, i.driver, i.resource, i.maker, i.model, i.serial,
    i.firmware, i.calibration_due, i.shared, g.started + (i.utc - i.run_started)
FROM gen g CROSS JOIN instruments i WHERE i.run_id = 'template'""",
    "steps": """
INSERT INTO steps (run_id, run_started, path, attempt, seq, step_id, name, action, phase,
    outcome, started_utc, finished_utc, t_start, duration_s, error)
SELECT g.id, g.started, s.path, s.attempt, s.seq, s.step_id, s.name, s.action, s.phase,
    CASE WHEN s.path = f.path THEN 'failed' ELSE s.outcome END,
    g.started + (s.started_utc - s.run_started), g.started + (s.finished_utc - s.run_started),
    s.t_start, s.duration_s, s.error
FROM gen g CROSS JOIN steps s
LEFT JOIN measurements f ON f.run_id = 'template' AND f.seq = g.fail_seq
WHERE s.run_id = 'template'""",
    "measurements": """
INSERT INTO measurements (run_id, run_started, seq, path, attempt, name, value_num, value_json,
    unit, limits, lsl, usl, verdict, text, utc, t)
SELECT g.id, g.started, m.seq, m.path, m.attempt, m.name, v.value,
    COALESCE(to_jsonb(v.value), m.value_json), m.unit, m.limits, m.lsl, m.usl,
    CASE WHEN m.seq = g.fail_seq THEN 'fail' ELSE m.verdict END, m.text,
    g.started + (m.utc - m.run_started), m.t
FROM gen g CROSS JOIN measurements m
CROSS JOIN LATERAL (SELECT CASE WHEN m.seq = g.fail_seq THEN
        COALESCE(m.lsl::float8 * 0.9, m.usl::float8 * 1.1, m.value_num * 2)
    ELSE m.value_num * (0.99 + 0.02 * random()) END AS value) v
WHERE m.run_id = 'template'""",
    "series": """
INSERT INTO series (run_id, run_started, seq, path, attempt, name, columns, rows, utc)
SELECT g.id, g.started, s.seq, s.path, s.attempt, s.name, s.columns, s.rows,
    g.started + (s.utc - s.run_started)
FROM gen g CROSS JOIN series s WHERE s.run_id = 'template'""",
    "safe_actions": """
INSERT INTO safe_actions (run_id, run_started, seq, instrument, action, ok, error, utc, confirmed)
SELECT g.id, g.started, a.seq, a.instrument, a.action, a.ok, a.error,
    g.started + (a.utc - a.run_started), a.confirmed
FROM gen g CROSS JOIN safe_actions a WHERE a.run_id = 'template'""",
    "events": """
INSERT INTO events (run_id, run_started, seq, kind, utc, t, data)
SELECT g.id, g.started, e.seq, e.kind, g.started + (e.utc - e.run_started), e.t,
    CASE WHEN e.kind = 'RunStarted' THEN e.data || jsonb_build_object('run_id', g.id, 'serial',
        g.serial, 'station_id', g.station_id, 'fixture_id', g.fixture_id) ELSE
        e.data || jsonb_build_object('run_id', g.id) END
FROM gen g CROSS JOIN events e WHERE e.run_id = 'template'""",
    "pack_components": """
INSERT INTO pack_components (pack_serial, kind, position, component_serial, source, run_id,
    recorded_utc)
SELECT g.serial, CASE WHEN k = 0 THEN 'bms' ELSE 'module' END,
    CASE WHEN k = 0 THEN 'ecu_serial' ELSE k::text END,
    CASE WHEN k = 0 THEN 'BMS' ELSE 'MOD' || k || '-' END || substr(g.serial, 3),
    CASE WHEN k = 0 THEN 'bms_did' ELSE 'scan' END, g.id, g.started
FROM (SELECT DISTINCT ON (serial) * FROM gen ORDER BY serial, started DESC) g
CROSS JOIN generate_series(0, %(modules)s) AS k
ON CONFLICT (pack_serial, kind, position, source) DO UPDATE SET run_id = excluded.run_id,
    recorded_utc = excluded.recorded_utc""",
}


def generate(conn: psycopg.Connection, *, runs: int, start: dt.date, days: int,
             stations: int = 8, fail_rate: float = 0.03, modules: int = 12,
             progress: Callable[[str], None] = lambda _: None,
             numbers: tuple[int, int] | None = None) -> dict[str, float]:
    """Fill ``runs`` runs after the template; returns seconds per phase. ``conn``: autocommit,
    admin, search_path on the migrated schema holding the template run. ``numbers`` (first,
    last), 1-based: only those runs of the ``runs``, so a sample can be grown in steps."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    month = start.replace(day=1)
    end = start + dt.timedelta(days=days)
    while month < end:
        conn.execute("SELECT line_ensure_month(%s)", (month,))
        month = (month + dt.timedelta(days=32)).replace(day=1)
    step_s = days * 86400 / runs
    every = max(2, round(1 / fail_rate)) if fail_rate > 0 else runs + 10
    gap = max(1, min(every - 1, round(3600 / step_s)))  # retest about an hour later
    params = {"start": dt.datetime.combine(start, dt.time(), dt.UTC),
              "step": dt.timedelta(seconds=step_s), "stations": stations,
              "retest_every": every, "retest_gap": gap, "modules": modules}
    per_month = max(1, round(runs * 30 / days))
    first, end_n = numbers or (1, runs)
    while first <= end_n:
        last = min(end_n, first + per_month - 1)
        with conn.transaction():
            conn.execute(_GEN, {**params, "first": first, "last": last})
            conn.execute(_RUNS, params)
            for table, sql in _CHILDREN.items():
                t = time.perf_counter()
                conn.execute(sql, params)
                timings[table] = timings.get(table, 0.0) + time.perf_counter() - t
        progress(f"runs {first:,}..{last:,} of {runs:,} ({time.perf_counter() - t0:.0f} s)")
        first = last + 1
    conn.execute("ANALYZE")
    timings["total"] = time.perf_counter() - t0
    return timings
