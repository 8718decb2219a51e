"""Store-and-forward: queue while the database is away, then exactly once, in order."""

from __future__ import annotations

import pytest

from station import clock
from station.events import RunStarted, StepStarted
from station.line.forwarder import Forwarder, ForwardError
from station.line.pg_store import PgResultStore, PgUnavailable
from station.results import ResultStore
from tests.line.line_helpers import run_many, write_station


def _journal(tmp_path, n, station="EOL-F"):
    config = write_station(tmp_path / station, station)
    ids = clock.run(run_many(config, n), virtual=True)
    return config.parent / "results" / "station.db", ids


def test_runs_queue_while_down_and_arrive_once_in_order(tmp_path, pg, pg_admin, proxy):
    url, schema = pg
    journal, ids = _journal(tmp_path, 5)
    fwd = Forwarder(journal, PgResultStore(proxy.url(url), schema=schema, connect_timeout_s=1))
    proxy.down()
    with pytest.raises(PgUnavailable):
        fwd.forward_once()
    assert [r for r, _ in fwd.pending()] == ids  # still queued locally, oldest first
    proxy.up()
    assert fwd.forward_once() == 5
    assert fwd.forward_once() == 0 and fwd.pending() == []
    rows = pg_admin.execute("SELECT id FROM runs ORDER BY uploaded_utc, id").fetchall()
    assert sorted(r[0] for r in rows) == sorted(ids)
    # Uploaded in journal order: each run's upload transaction committed after the previous.
    xmins = pg_admin.execute("SELECT id, xmin::text::bigint FROM runs").fetchall()
    assert sorted(ids, key=dict(xmins).get) == ids
    # A crash after the PostgreSQL commit but before the local mark: the run is sent again
    # and the database ignores it.
    n_events = pg_admin.execute("SELECT count(*) FROM events").fetchone()[0]
    fwd._db().execute("DELETE FROM line_uploads")
    assert fwd.forward_once() == 5
    assert fwd.replayed == 5
    assert pg_admin.execute("SELECT count(*) FROM events").fetchone()[0] == n_events
    assert pg_admin.execute("SELECT count(*) FROM runs").fetchone()[0] == 5
    fwd.stop()


def test_interrupted_run_is_forwarded_as_interrupted(tmp_path, pg, pg_admin):
    url, schema = pg
    journal = tmp_path / "results.db"
    with ResultStore(journal) as store:
        store.handle(RunStarted("run-int-1", "2026-11-25T08:00:00.000+00:00", 0.0, "SN9", "p",
                                "1", "t", "p.yaml", "ab" * 32, None, {}, "EOL-I", "F1", "op",
                                "0.1", False))
        store.handle(StepStarted("run-int-1", "2026-11-25T08:00:01.000+00:00", 1.0, "main/a",
                                 "a", "a", "station.wait", "main"))
        fwd = Forwarder(journal, PgResultStore(url, schema=schema))
        assert fwd.pending() == []  # its writer is alive: the run may still go on
    # The store closed without RunFinished: its writer is gone, the run is interrupted.
    assert fwd.pending() == [("run-int-1", "interrupted")]
    assert fwd.forward_once() == 1
    assert pg_admin.execute("SELECT status, serial FROM runs").fetchall() == [("interrupted",
                                                                                "SN9")]
    fwd.stop()


def test_background_forwarder_survives_killed_connections(tmp_path, pg, pg_admin):
    url, schema = pg
    config = write_station(tmp_path / "st", "EOL-K")
    journal = config.parent / "results" / "station.db"
    fwd = Forwarder(journal, PgResultStore(url, schema=schema, application_name="eol-kill-me"),
                    backoff_s=(0.05, 0.2))
    killed = []

    def after_each(session, run_id):
        if fwd._thread is None:
            fwd.start()
        if len(killed) < 3 and pg_admin.execute(
                "SELECT count(*) FROM runs").fetchone()[0] > 5 * len(killed):
            killed.append(pg_admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'eol-kill-me'").fetchone()[0])

    ids = clock.run(run_many(config, 40, subscribers=[fwd.handle], pace_s=0.01,
                             after_each=after_each), virtual=True)
    assert fwd.wait_idle(20)
    fwd.stop()
    assert sum(killed) >= 1  # the database really dropped the forwarder's connection
    got = pg_admin.execute("SELECT id, count(*) FROM runs GROUP BY id").fetchall()
    assert sorted(r[0] for r in got) == sorted(ids) and {r[1] for r in got} == {1}
    assert fwd.failures >= 1


def test_an_error_retrying_cannot_fix_is_kept_shown_and_never_raised(tmp_path, pg, pg_admin):
    url, schema = pg
    journal, ids = _journal(tmp_path, 1)
    pg_admin.execute("INSERT INTO schema_migrations (version, name, sha256, breaking) "
                     "VALUES (99, 'x', 'y', true)")
    states = []
    fwd = Forwarder(journal, PgResultStore(url, schema=schema), on_state=states.append).start()
    assert fwd.wait_idle(5) is False
    assert isinstance(fwd.error, ForwardError) and "not additive" in str(fwd.error)
    fwd.stop()  # delivery never raises into the run or its exit code
    assert [r for r, _ in fwd.pending()] == ids  # still queued locally, nothing lost
    assert states and "not additive" in states[-1]["error"]
    from station.line.line_status import status

    (row,) = status(journal)
    assert row["backlog"] == 1 and "not additive" in row["last_error"]
    # The admin upgrades (here: takes the breaking version away): the queue drains.
    pg_admin.execute("DELETE FROM schema_migrations WHERE version = 99")
    fwd2 = Forwarder(journal, PgResultStore(url, schema=schema))
    assert fwd2.forward_once() == 1
    (row,) = status(journal)
    assert row["backlog"] == 0 and row["last_ok_utc"] is not None
    fwd2.stop()
