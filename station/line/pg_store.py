"""The line's result database: the station record model on PostgreSQL (psycopg 3).

Stations never write here while a run is going; they journal into their local SQLite store and
the forwarder (forwarder.py) hands finished and interrupted runs to ``PgResultStore.ingest``:
one transaction per run, idempotent upserts keyed by run id + event sequence, so several
stations writing at once, or one run uploaded twice, never lose or duplicate a record.

Selected by a connection URL (``postgresql://user@host:5432/db``); ``schema`` (or
``?options=-csearch_path%3Dname`` in the URL) puts the tables in a schema of their own.
Stations only check the schema on ``open()`` (pg_migrate.check, SELECT rights only); ``station
db migrate`` creates and migrates it. A ``schema`` that does not exist is an error, never
created here. ``identity`` is the database's own id (``line_identity``), the same whatever
host spelling the URL uses. ``record`` returns what ``station.results.ResultStore.record``
returns. Times are ``timestamptz`` and JSON ``jsonb`` in the database; both are read back
as the journal's text (UTC ISO 8601 with milliseconds, JSON text).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.string import TextLoader

from station.results import record as record_model
from station.results.store import StoreError, UnknownRunError

from . import pg_migrate, pg_rows
from .pg_rows import JournalEvent


class PgStoreError(StoreError):
    """The PostgreSQL result store failed; the message names the database (never a password)."""


class PgUnavailable(PgStoreError):
    """The database cannot be reached or dropped the connection: worth retrying later."""


def describe(url: str, schema: str | None = None) -> str:
    """``postgresql://user@host:port/db[#schema]`` for messages: no password, no options."""
    try:
        p = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://<unparsable url>"
    text = (f"postgresql://{p.get('user', '')}@{p.get('host', 'localhost')}:"
            f"{p.get('port', 5432)}/{p.get('dbname', '')}")
    return f"{text}#{schema}" if schema else text


class PgResultStore:
    """Result records in PostgreSQL.

    ``url``: libpq connection URL. ``schema``: tables live in this schema (created if missing).
    ``connect_timeout_s``: how long ``open()`` waits for the server, s.
    ``application_name``: shown in ``pg_stat_activity`` (the station id is a good choice).
    """

    def __init__(self, url: str, *, schema: str | None = None, connect_timeout_s: float = 5.0,
                 application_name: str = "eol-station") -> None:
        if schema is not None and not pg_migrate.SCHEMA_NAME.match(schema):
            raise PgStoreError(describe(url), f"bad schema name {schema!r}")
        self.url = url
        self.schema = schema
        self.name = describe(url, schema)
        self.connect_timeout_s = connect_timeout_s
        self.application_name = application_name
        self.version = 0  # the database's schema version, as of the last open()
        self.identity: str | None = None  # line_identity.id, as of the last open()
        self._conn: psycopg.Connection | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> PgResultStore:
        """Connect and check the schema. Raises ``PgUnavailable`` if the server is unreachable,
        ``PgStoreError`` if the schema is missing, older or not compatible (a message saying
        what to do: usually run ``station db migrate``)."""
        if self._conn is not None:
            return self
        kwargs: dict[str, Any] = {"autocommit": True, "application_name": self.application_name,
                                  "connect_timeout": max(1, round(self.connect_timeout_s))}
        kwargs["options"] = "-c TimeZone=UTC" + (
            f" -c search_path={self.schema}" if self.schema else "")
        try:
            self._conn = psycopg.connect(self.url, **kwargs)
            self._conn.adapters.register_loader("jsonb", TextLoader)  # JSON text, as journalled
            self.version = pg_migrate.check(self._conn, self.schema)
            self.identity = str(self._conn.execute("SELECT id FROM line_identity").fetchone()[0])
        except psycopg.OperationalError as exc:
            self.close()
            raise PgUnavailable(self.name, f"cannot connect: {exc}".strip()) from exc
        except (psycopg.Error, pg_migrate.MigrationError) as exc:
            self.close()
            raise PgStoreError(self.name, f"cannot open: {exc}") from exc
        return self

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    @property
    def is_open(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def __enter__(self) -> PgResultStore:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _db(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            raise PgStoreError(self.name, "store is not open")
        return self._conn

    def _fail(self, what: str, exc: psycopg.Error) -> PgStoreError:
        if isinstance(exc, psycopg.OperationalError):  # lost connection, admin shutdown, ...
            self.close()  # the next attempt reconnects
            return PgUnavailable(self.name, f"{what}: {exc}".strip())
        return PgStoreError(self.name, f"{what}: {exc}".strip())

    # -- writing ----------------------------------------------------------------------------
    def ingest(self, run_id: str, events: Sequence[JournalEvent], *, status: str,
               source: str = "", components: Sequence[tuple[str, str, str]] = ()) -> int:
        """Write one run's journalled events (in ``seq`` order) in one transaction.

        ``status``: ``finished`` or ``interrupted`` (``finished`` wins if RunFinished is among
        the events). ``source``: which station journal they came from. ``components``: (kind,
        position, serial) the MES named for the pack (genealogy). Returns how many events
        were new; 0 means the run was already complete here (a replay).
        """
        rows = pg_rows.build(run_id, list(events), status=status, source=source,
                             components=components)
        db = self._db()
        try:
            with db.transaction():
                had = db.execute("SELECT event_count FROM runs WHERE id = %s FOR UPDATE",
                                 (run_id,)).fetchone()
                db.execute(pg_rows.RUN_UPSERT, rows.run_params(run_id))
                with db.cursor() as cur:
                    for key, params in rows.rows.items():
                        if params:
                            cur.executemany(pg_rows.SQL[key], params)
        except psycopg.Error as exc:
            raise self._fail(f"cannot write run {run_id}", exc) from exc
        return max(0, len(events) - (had[0] if had else 0))

    def ingest_audit(self, entries: Sequence[dict[str, Any]], *, source: str) -> int:
        """Write audit entries (``station.security.audit`` dicts) of one station log, in one
        transaction; an entry already here is kept as it was (the line's copy is what a local
        edit is compared with). Returns how many were new."""
        db = self._db()
        rows = [(source, e["seq"], e["time"], e["kind"], json.dumps(e.get("fields", {})), e["prev"], e["hash"])
                for e in entries]
        try:
            with db.transaction(), db.cursor() as cur:
                before = cur.execute("SELECT count(*) FROM audit_log WHERE source = %s", (source,)).fetchone()[0]
                cur.executemany("INSERT INTO audit_log (source, seq, entry_time, kind, fields, prev, hash) "
                                "VALUES (%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (source, seq) DO NOTHING", rows)
                after = cur.execute("SELECT count(*) FROM audit_log WHERE source = %s", (source,)).fetchone()[0]
        except psycopg.Error as exc:
            raise self._fail(f"cannot write the audit log of {source}", exc) from exc
        return after - before

    # -- reading ----------------------------------------------------------------------------
    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        db = self._db()
        try:
            cur = db.execute(sql, args)
            names = [d.name for d in cur.description or []]
            return [{n: _text(v) for n, v in zip(names, row)} for row in cur.fetchall()]
        except psycopg.Error as exc:
            raise self._fail("cannot read", exc) from exc

    def runs(self, limit: int = 50, serial: str | None = None) -> list[dict[str, Any]]:
        """The newest runs first (optionally of one pack serial), as summary dicts."""
        sql = ("SELECT id, serial, plan_id, plan_version, variant, station_id, operator, "
               "started_utc, finished_utc, duration_s, verdict, status, simulated, "
               "mes_transaction_id FROM runs")
        args: list[Any] = []
        if serial is not None:
            sql += " WHERE serial = %s"
            args.append(serial)
        sql += " ORDER BY started_utc DESC NULLS LAST, id LIMIT %s"
        args.append(int(limit))
        return self._query(sql, args)

    def record(self, run_id: str) -> dict[str, Any]:
        """The full record of one run: what ``ResultStore.record`` gives for it."""
        db = self._db()
        # run_started in every query: only the run's month partition is read.
        q = "SELECT * FROM {} WHERE run_id = %s AND run_started = %s ORDER BY seq"
        try:
            with db.transaction():  # one snapshot per record
                db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                found = self._query("SELECT * FROM runs WHERE id = %s", [run_id])
                if not found:
                    raise UnknownRunError(self.name, f"no run with id {run_id!r}")
                key = [run_id, db.execute("SELECT started_utc FROM runs WHERE id = %s",
                                          [run_id]).fetchone()[0]]
                journal = self._query(
                    "SELECT kind, utc, t, data FROM events WHERE run_id = %s AND run_started = %s"
                    " AND kind IN ('RunStarted', 'MonitorTripped', 'PromptRequested', "
                    "'PromptAnswered', 'LogMessage', 'StartupChecked') ORDER BY seq", key)
                rows = [self._query(q.format(t), key) for t in (
                    "instruments", "steps", "measurements", "series", "safe_actions")]
        except psycopg.Error as exc:
            raise self._fail(f"cannot read run {run_id}", exc) from exc
        run = found[0]
        return record_model.assemble(run, *rows, journal, run["last_event_utc"])


def _text(value: Any) -> Any:
    """A timestamptz as the journal writes it (UTC, milliseconds); anything else as is."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    return value
