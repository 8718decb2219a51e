"""PostgreSQL result store: least privilege, migrations (admin only, additive = rolling),
idempotent ingest, the same record as the station's, one identity whatever the URL spelling."""

from __future__ import annotations

import threading

import psycopg
import pytest

from station import clock
from station.line import pg_migrate
from station.line.forwarder import Forwarder
from station.line.pg_store import PgResultStore, PgStoreError, PgUnavailable
from station.results import ResultStore
from tests.line.line_helpers import PG_URL, random_name, run_many, write_station


@pytest.fixture
def empty_schema():
    admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    schema = random_name("eol_test_")
    yield schema
    admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    admin.close()


def _admin(schema):
    return psycopg.connect(PG_URL, autocommit=True, options=f"-c search_path={schema}")


def test_concurrent_admins_migrate_once(empty_schema):
    applied, errors = [], []

    def migrate_one():
        try:
            with _admin(empty_schema) as conn:
                applied.extend(pg_migrate.migrate(conn, empty_schema))
        except Exception as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=migrate_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    versions = [m.version for m in pg_migrate.migrations()]
    assert sorted(applied) == versions  # each applied once, by one of them
    with _admin(empty_schema) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
        assert [r[0] for r in rows] == versions
        # Monthly partitions exist ahead of time for every per-run table.
        parts = conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = "
                             "'measurements'::regclass").fetchone()[0]
        assert parts == pg_migrate.MONTHS_AHEAD + 2  # this month, the months ahead, default


def test_station_never_migrates_and_a_typo_creates_no_schema(empty_schema, pg_roles):
    # A station pointed at a schema nobody migrated: a clear error, nothing created.
    with pytest.raises(PgStoreError, match="station db migrate"):
        PgResultStore(PG_URL, schema=empty_schema).open()
    with _admin("public") as conn:
        assert not pg_migrate.schema_exists(conn, empty_schema)
    typo = pg_roles.schema + "x"
    with pytest.raises(PgStoreError, match=f"no schema '{typo}'"):
        PgResultStore(pg_roles.station_url, schema=typo).open()
    with _admin("public") as conn:
        assert not pg_migrate.schema_exists(conn, typo)
    # The admin command does not create one either unless asked.
    with _admin(typo) as conn, pytest.raises(pg_migrate.MigrationError, match="create-schema"):
        pg_migrate.migrate(conn, typo, create_schema=False)


def test_station_role_has_dml_only_and_reader_select_only(pg_roles):
    with psycopg.connect(pg_roles.station_url, autocommit=True,
                         options=f"-c search_path={pg_roles.schema}") as st:
        st.execute("INSERT INTO runs (id, started_utc, status) VALUES ('r1', now(), 'finished')")
        st.execute("UPDATE runs SET verdict = 'PASS' WHERE id = 'r1'")
        for ddl in ("CREATE TABLE x (a int)", "ALTER TABLE runs ADD COLUMN y int",
                    "DELETE FROM runs", "DROP TABLE events", "SELECT line_ensure_month('2031-01-01')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                st.execute(ddl)
    with psycopg.connect(pg_roles.reader_url, autocommit=True,
                         options=f"-c search_path={pg_roles.schema}") as rd:
        assert rd.execute("SELECT verdict FROM v_runs").fetchall() == [("PASS",)]
        assert rd.execute("SELECT runs, passed FROM v_yield_daily").fetchall() == [(1, 1)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            rd.execute("UPDATE runs SET verdict = 'FAIL'")


def test_station_runs_against_a_schema_one_version_newer(tmp_path, pg, pg_admin):
    url, schema = pg
    n = len(pg_migrate.migrations())
    # What the next release's additive migration might do, applied by the admin:
    pg_admin.execute("ALTER TABLE runs ADD COLUMN line_shift TEXT")
    pg_admin.execute("ALTER TABLE measurements ADD COLUMN uncertainty DOUBLE PRECISION")
    pg_admin.execute("CREATE TABLE rework (serial TEXT)")
    pg_admin.execute("INSERT INTO schema_migrations (version, name, sha256) VALUES (%s, 'next', "
                     "'x')", (n + 1,))
    config = write_station(tmp_path / "st", "EOL-N")
    ids = clock.run(run_many(config, 2), virtual=True)
    fwd = Forwarder(config.parent / "results" / "station.db", PgResultStore(url, schema=schema))
    assert fwd.forward_once() == 2
    assert fwd.pg.version == n + 1
    assert pg_admin.execute("SELECT count(*) FROM runs WHERE id = ANY(%s)",
                            (ids,)).fetchone()[0] == 2
    fwd.stop()
    # A release whose migration is not additive stops older stations, saying why.
    pg_admin.execute("INSERT INTO schema_migrations (version, name, sha256, breaking) VALUES "
                     "(%s, 'later', 'y', true)", (n + 2,))
    with pytest.raises(PgStoreError, match=f"version {n + 2} is not additive"):
        PgResultStore(url, schema=schema).open()


def test_edited_migration_and_older_schema_are_refused(pg, pg_admin):
    url, schema = pg
    pg_admin.execute("UPDATE schema_migrations SET sha256 = 'edited' WHERE version = 1")
    with pytest.raises(PgStoreError, match="changed after it was applied"):
        PgResultStore(url, schema=schema).open()
    pg_admin.execute("DELETE FROM schema_migrations WHERE version = 3")
    with pytest.raises(PgStoreError, match="run `station db migrate`"):
        PgResultStore(url, schema=schema).open()


def test_unreachable_database_is_typed_and_names_no_password():
    store = PgResultStore("postgresql://eol:s3cret@127.0.0.1:1/test", connect_timeout_s=1)
    with pytest.raises(PgUnavailable) as info:
        store.open()
    assert "127.0.0.1:1/test" in str(info.value) and "s3cret" not in str(info.value)


def test_record_in_postgres_equals_local_record_and_replay_is_a_noop(tmp_path, pg, pg_admin):
    url, schema = pg
    config = write_station(tmp_path / "st", "EOL-R")
    ids = clock.run(run_many(config, 3), virtual=True)
    journal = config.parent / "results" / "station.db"
    pg_store = PgResultStore(url, schema=schema)
    fwd = Forwarder(journal, pg_store)
    assert fwd.forward_once() == 3
    with ResultStore(journal, readonly=True) as local:
        for run_id in ids:
            remote = pg_store.record(run_id)
            assert remote == local.record(run_id)
        events = local._query("SELECT run_id, seq, kind, data FROM events WHERE run_id = ? "
                              "ORDER BY seq", [ids[0]])
    from station.line.pg_rows import JournalEvent

    again = [JournalEvent(e["seq"], e["kind"], None, None, e["data"]) for e in events]
    assert pg_store.ingest(ids[0], again, status="finished") == 0  # nothing new, nothing doubled
    assert pg_admin.execute("SELECT event_count FROM runs WHERE id = %s",
                            (ids[0],)).fetchone()[0] == len(events)
    assert pg_admin.execute("SELECT count(*) FROM runs").fetchone()[0] == 3
    # Typed columns: times are timestamptz, limits numeric, JSON jsonb.
    row = pg_admin.execute("SELECT pg_typeof(started_utc)::text, pg_typeof(parameters)::text "
                           "FROM runs LIMIT 1").fetchone()
    assert row == ("timestamp with time zone", "jsonb")
    lims = pg_admin.execute("SELECT lsl, usl FROM measurements WHERE name = 'cell_v_mean' "
                            "LIMIT 1").fetchone()
    assert [float(v) for v in lims] == [3.2, 3.4]
    fwd.stop()


def test_target_identity_does_not_depend_on_the_url_spelling(tmp_path, pg):
    url, schema = pg
    config = write_station(tmp_path / "st", "EOL-U")
    clock.run(run_many(config, 2), virtual=True)
    journal = config.parent / "results" / "station.db"
    first = Forwarder(journal, PgResultStore(url, schema=schema))
    assert first.forward_once() == 2
    first.stop()
    other = Forwarder(journal, PgResultStore(url.replace("127.0.0.1", "localhost"),
                                             schema=schema))
    assert other.forward_once() == 0 and other.replayed == 0  # nothing re-queued
    assert other.target == first.target and other.target.startswith("pg:")
    other.stop()


def test_v2_schema_rows_are_carried_into_the_year_schema(empty_schema):
    old = pg_migrate.migrations()[:2]
    with _admin(empty_schema) as conn:
        conn.execute(f"CREATE SCHEMA {empty_schema}")
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT "
                     "NULL, sha256 TEXT NOT NULL, applied_utc TIMESTAMPTZ NOT NULL DEFAULT now())")
        for m in old:
            conn.execute(m.sql.encode())
            conn.execute("INSERT INTO schema_migrations (version, name, sha256) VALUES "
                         "(%s, %s, %s)", (m.version, m.name, m.sha256))
        conn.execute("INSERT INTO runs (id, serial, parameters, faults, started_utc, status, "
                     "verdict) VALUES ('old1', 'SN1', '{\"v\": 1}', '[]', "
                     "'2026-05-04T10:00:00.000+00:00', 'finished', 'PASS')")
        conn.execute("INSERT INTO measurements VALUES ('old1', 5, 'main/a', 1, 'v', 3.3, '3.3', "
                     "'V', '{\"min\": 3.2, \"max\": 3.4}', 'pass', '', "
                     "'2026-05-04T10:00:01.000+00:00', 1.0)")
        conn.execute("INSERT INTO events VALUES ('old1', 1, 'RunStarted', "
                     "'2026-05-04T10:00:00.000+00:00', 0, '{}'), ('old1', 5, 'MeasurementTaken', "
                     "'2026-05-04T10:00:01.000+00:00', 1, '{}')")
        assert pg_migrate.migrate(conn, empty_schema) == [m.version for m in
                                                         pg_migrate.migrations()[2:]]
        run = conn.execute("SELECT started_utc, parameters, event_count FROM runs").fetchone()
        assert run[0].isoformat() == "2026-05-04T10:00:00+00:00"
        assert run[1] == {"v": 1} and run[2] == 2
        assert conn.execute("SELECT lsl::float8, usl::float8 FROM measurements_y2026m05"
                            ).fetchone() == (3.2, 3.4)
        assert conn.execute("SELECT kind FROM events").fetchall() == [("RunStarted",)]
