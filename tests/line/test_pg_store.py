"""PostgreSQL result store: migrations under concurrency, idempotent ingest, same record."""

from __future__ import annotations

import threading

import pytest

from station import clock
from station.line import pg_migrate
from station.line.forwarder import Forwarder
from station.line.pg_store import PgResultStore, PgStoreError, PgUnavailable
from station.results import ResultStore
from tests.line.line_helpers import run_many, write_station


def test_concurrent_stations_migrate_once(pg, pg_admin):
    url, schema = pg
    stores = [PgResultStore(url, schema=schema) for _ in range(4)]
    errors = []

    def open_one(store):
        try:
            store.open()
        except Exception as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        versions = [m.version for m in pg_migrate.migrations()]
        assert sorted(v for s in stores for v in s.migrated) == versions  # each applied once
        rows = pg_admin.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        assert [r[0] for r in rows] == versions
    finally:
        for s in stores:
            s.close()


def test_newer_or_edited_schema_is_refused(pg, pg_admin):
    url, schema = pg
    PgResultStore(url, schema=schema).open().close()
    pg_admin.execute("INSERT INTO schema_migrations (version, name, sha256) VALUES (99, 'x', 'y')")
    with pytest.raises(PgStoreError, match="newer"):
        PgResultStore(url, schema=schema).open()
    pg_admin.execute("DELETE FROM schema_migrations WHERE version = 99")
    pg_admin.execute("UPDATE schema_migrations SET sha256 = 'edited' WHERE version = 1")
    with pytest.raises(PgStoreError, match="changed after it was applied"):
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
            assert remote.pop("mes_transaction_id") is None
            assert remote == local.record(run_id)
        events = local._query("SELECT run_id, seq, kind, data FROM events WHERE run_id = ? "
                              "ORDER BY seq", [ids[0]])
    from station.line.pg_rows import JournalEvent

    again = [JournalEvent(e["seq"], e["kind"], None, None, e["data"]) for e in events]
    assert pg_store.ingest(ids[0], again, status="finished") == 0  # nothing new, nothing doubled
    assert pg_admin.execute("SELECT count(*) FROM events WHERE run_id = %s",
                            (ids[0],)).fetchone()[0] == len(events)
    assert pg_admin.execute("SELECT count(*) FROM runs").fetchone()[0] == 3
    fwd.stop()
