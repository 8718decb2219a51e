"""The result store: every event journalled into SQLite (WAL) as it happens.

``ResultStore.handle(event)`` is the sequencer's subscriber: one transaction per event, holding
the raw event and its typed rows, committed before ``handle`` returns. A crash therefore loses
at most the event in flight, and a run without ``RunFinished`` whose writer is gone shows as
``interrupted`` (see liveness.py).

Durability (``synchronous``), with WAL:

- ``"FULL"`` (default): every commit fsyncs the WAL. A power loss or OS crash loses at most the
  event being written. Costs one fsync per event (~0.2 ms on a VM disk, more on an SD card).
- ``"NORMAL"``: the WAL is fsynced only at checkpoints. A crash of the station process loses
  nothing committed; a power loss or OS crash may lose the last events committed before it
  (never corrupts the database). ~10x faster per event.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import liveness, record as record_model
from .journal import Journal
from .schema import migrate

if TYPE_CHECKING:
    from station.events import Event

_SYNC_MODES = ("FULL", "NORMAL")


class StoreError(Exception):
    """A result store that cannot be opened, read or written; names the file."""

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = str(path)
        super().__init__(f"result store {self.path}: {message}")


class UnknownRunError(StoreError, LookupError):
    """No run (or no unique run) with the given id or id prefix."""


class StoreModeError(StoreError):
    """A station in one mode opened a store that belongs to the other (production records must
    never hold a development run, nor the reverse). ``store_mode`` and ``station_mode`` say which."""

    def __init__(self, path: str | Path, store_mode: str, station_mode: str) -> None:
        self.store_mode, self.station_mode = store_mode, station_mode
        super().__init__(path, f"this is a {store_mode} store; a {station_mode} station may not write to it "
                               f"(give a {station_mode} store with --db, or run the station in {store_mode} mode)")


MODES = ("development", "production")


# Events held in memory until the next boundary event commits them (the end of their step).
# A monitor trip is held too: an fsync sat on the reaction path between a trip and the last HV
# source switched off (tests/reliability); the first safe-state line commits it a moment later.
_HELD = frozenset({"StepStarted", "MeasurementTaken", "SeriesRecorded", "LogMessage", "PromptAnswered",
                   "MonitorTripped"})
# Committed as each happens but without an fsync (WAL, synchronous=NORMAL for that commit): a
# station killed during a slow safe state keeps every action already done (the OS has the
# write), and no fsync sits between one HV source switched off and the next. RunFinished's
# commit (FULL) makes them durable against a power loss too.
_UNSYNCED = frozenset({"SafeStateAction"})


class ResultStore:
    """The station's embedded result journal.

    ``path``: the database file (its directory is created), or ``":memory:"``.
    ``synchronous``: ``"FULL"`` or ``"NORMAL"`` (see the module docstring).
    ``readonly``: open an existing store for reading only (CLI); never creates a file.
    ``busy_timeout_s``: how long a write waits for another writer holding the file.
    ``mode``: the mode of the station writing (``development`` / ``production``). The first
    writer with a mode claims the store for it; a writer of the other mode is refused
    (``StoreModeError``) before anything is written. None: no claim, no check (tools, tests).
    """

    def __init__(self, path: str | Path, *, synchronous: str = "FULL", readonly: bool = False,
                 busy_timeout_s: float = 5.0, mode: str | None = None) -> None:
        if mode is not None and mode not in MODES:
            raise StoreError(path, f"mode must be one of {MODES}, not {mode!r}")
        self.mode = mode
        if synchronous not in _SYNC_MODES:
            raise StoreError(path, f"synchronous must be one of {_SYNC_MODES}, not {synchronous!r}")
        self.path = Path(path) if str(path) != ":memory:" else None
        self._name = str(path)
        self.synchronous = synchronous
        self.readonly = readonly
        self.busy_timeout_s = busy_timeout_s
        self.recovered: list[str] = []  # runs marked interrupted by open()
        self._conn: sqlite3.Connection | None = None
        self._writer: liveness.WriterLock | None = None
        self._lock = threading.RLock()  # record() nests _query calls
        self._pending: list = []  # (event, kind) held until their step ends (see handle)
        self._journal = Journal(None)

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> ResultStore:
        """Open (creating file and schema if needed), then mark dead writers' runs interrupted.

        Idempotent, so ``with ResultStore(p).open() as s:`` and ``with ResultStore(p) as s:``
        both work.
        """
        if self._conn is not None:
            return self
        # a store that cannot be opened leaves no lock directory of its own behind (a --db naming
        # a directory or a plan file would otherwise get a "<name>-writers/" beside it)
        made_writers = self.path is not None and not self.readonly and not liveness.writers_dir(self.path).exists()
        try:
            if self.path is not None and not self.readonly:
                with liveness.setup_lock(self.path):
                    self._conn = self._connect()
                    migrate(self._conn)
            else:
                self._conn = self._connect()
                if not self.readonly:
                    migrate(self._conn)
            if not self.readonly:
                if self.mode is not None:
                    self._claim_mode(self.mode)
                if self.path is not None:
                    self._writer = liveness.WriterLock(self.path)
                    self._writer.acquire()
                    self.recovered = self.mark_interrupted()
                self._journal = Journal(self._writer.token if self._writer else None)
        except StoreModeError:
            self.close()
            raise
        except (sqlite3.Error, OSError, ValueError) as exc:
            self.close()
            if made_writers:
                shutil.rmtree(liveness.writers_dir(self.path), ignore_errors=True)  # type: ignore[arg-type]
            raise StoreError(self._name, f"cannot open: {exc}") from exc
        return self

    def _claim_mode(self, mode: str) -> None:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")  # two first writers cannot both claim
        try:
            row = db.execute("SELECT mode FROM store_mode LIMIT 1").fetchone()
            if row is None:
                db.execute("INSERT INTO store_mode VALUES (?, ?)",
                           (mode, dt.datetime.now(dt.UTC).isoformat()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if row is not None and row[0] != mode:
            raise StoreModeError(self._name, row[0], mode)

    def store_mode(self) -> str | None:
        """The mode this store was claimed for (None: never opened by a station with a mode,
        or written before schema v3)."""
        try:
            rows = self._query("SELECT mode FROM store_mode LIMIT 1", [])
        except StoreError:  # a read-only store older than v3 has no such table
            return None
        return rows[0]["mode"] if rows else None

    def _connect(self) -> sqlite3.Connection:
        if self.path is None:
            return sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        if self.readonly:
            if not self.path.is_file():
                raise OSError(f"no such file {self.path}")
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
        if not self.readonly:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise OSError(f"WAL journal not supported here (got {mode})")
            conn.execute(f"PRAGMA synchronous={self.synchronous}")
        return conn

    def close(self) -> None:
        if self._conn is not None:
            if self._pending:  # a clean close keeps what a crash would lose
                batch, self._pending = self._pending, []
                self._write(batch)
            self._conn.close()
            self._conn = None
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> ResultStore:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(self._name, "store is not open")
        return self._conn

    # -- liveness ---------------------------------------------------------------------------
    def _alive(self, token: str | None) -> bool:
        if self.path is None:  # a memory store has exactly one writer: this object
            return True
        if self._writer is not None and token == self._writer.token:
            return True
        return liveness.writer_alive(self.path, token)

    def _status(self, status: str, writer: str | None) -> str:
        if status == "running" and not self._alive(writer):
            return "interrupted"
        return status

    def mark_interrupted(self) -> list[str]:
        """Mark "running" runs whose writer is gone as interrupted; returns their ids."""
        db = self._db()
        rows = db.execute("SELECT id, writer FROM runs WHERE status = 'running'").fetchall()
        dead = [(run_id, writer) for run_id, writer in rows if not self._alive(writer)]
        if dead:
            with self._lock:
                db.execute("BEGIN IMMEDIATE")
                db.executemany("UPDATE runs SET status = 'interrupted' WHERE id = ? AND "
                               "status = 'running'", [(run_id,) for run_id, _ in dead])
                db.execute("COMMIT")
            if self.path is not None:
                liveness.reap(self.path, {w for _, w in dead if w})
        return [run_id for run_id, _ in dead]

    # -- writing ----------------------------------------------------------------------------
    def handle(self, event: Event) -> None:
        """Journal one event. Raises ``StoreError``.

        Events inside a step (its start, measurements, series, log lines) are held until the
        step's end and committed with it in one transaction: one fsync per step instead of one
        per event (with synchronous=FULL that was ~0.3 ms each, 2.2 ms per trivial step). A
        crash or power loss therefore loses at most the step in flight.
        """
        if self.readonly:
            raise StoreError(self._name, "store is open read-only")
        kind = type(event).__name__
        with self._lock:
            self._pending.append((event, kind))
            if kind in _HELD:
                return
            batch, self._pending = self._pending, []
            self._write(batch, sync=kind not in _UNSYNCED)

    def _write(self, batch: list, *, sync: bool = True) -> None:
        db = self._db()
        relaxed = not sync and self.synchronous == "FULL"
        if relaxed:
            db.execute("PRAGMA synchronous=NORMAL")
        # Each event's counters must move before the next one is written in the same
        # transaction; on a rollback they go back to where they were.
        saved = (dict(self._journal._seq), dict(self._journal._attempts))
        try:
            db.execute("BEGIN IMMEDIATE")
            for event, kind in batch:
                self._journal.committed(event, self._journal.write(db, event, kind))
            db.execute("COMMIT")
        except (sqlite3.Error, TypeError, ValueError, AttributeError) as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._journal._seq, self._journal._attempts = saved
            event, kind = batch[-1]
            raise StoreError(self._name, f"cannot journal {kind} of run {event.run_id}: {exc}") from exc
        finally:
            if relaxed:
                db.execute(f"PRAGMA synchronous={self.synchronous}")

    # -- reading ----------------------------------------------------------------------------
    def runs(self, limit: int = 50, serial: str | None = None,
             mode: str | None = None) -> list[dict[str, Any]]:
        """The newest runs first (optionally of one pack serial; with ``mode``, only runs
        recorded in that station mode), as summary dicts with their ``station_mode``."""
        v3 = self._has_column("runs", "station_mode")
        sql = ("SELECT id, serial, plan_id, plan_version, variant, station_id, operator, "
               "started_utc, finished_utc, duration_s, verdict, status, writer, simulated, faults, "
               + ("station_mode " if v3 else "NULL AS station_mode ") + "FROM runs")
        where, args = [], []
        if serial is not None:
            where.append("serial = ?")
            args.append(serial)
        if mode is not None:
            where.append("station_mode = ?" if v3 else "0")
            if v3:
                args.append(mode)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY rowid DESC LIMIT ?"
        args.append(int(limit))
        out = []
        for row in self._query(sql, args):
            row["status"] = self._status(row["status"], row.pop("writer"))
            row["simulated"] = None if row["simulated"] is None else bool(row["simulated"])
            try:  # faults injected (a JSON list); a row written by an old version may lack them
                row["faults"] = [str(f) for f in json.loads(row["faults"] or "[]")]
            except (TypeError, ValueError):
                row["faults"] = [str(row["faults"])]
            out.append(row)
        return out

    def last_config_sha256(self) -> str | None:
        """The station config sha256 of the newest run that recorded one (None: no such run)."""
        if not self._has_column("runs", "config_sha256"):
            return None
        rows = self._query("SELECT config_sha256 FROM runs WHERE config_sha256 IS NOT NULL "
                           "ORDER BY rowid DESC LIMIT 1", [])
        return rows[0]["config_sha256"] if rows else None

    def _has_column(self, table: str, column: str) -> bool:
        # a read-only store is not migrated: an older one lacks the v3 columns
        return any(r["name"] == column for r in self._query(f"PRAGMA table_info({table})", []))

    def find_run(self, prefix: str) -> str:
        """The full run id for an id or a unique id prefix; ``UnknownRunError`` otherwise."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        ids = [r["id"] for r in self._query(
            "SELECT id FROM runs WHERE id = ? OR id LIKE ? ESCAPE '\\' LIMIT 3", [prefix, pattern])]
        if prefix in ids:
            return prefix
        if len(ids) != 1:
            what = "no run" if not ids else "more than one run"
            raise UnknownRunError(self._name, f"{what} with id {prefix!r}")
        return ids[0]

    def flush(self) -> None:
        """Commit the events held for the step in flight (a reader in this process sees them)."""
        with self._lock:
            if self._pending and not self.readonly:
                batch, self._pending = self._pending, []
                self._write(batch)

    def record(self, run_id: str) -> dict[str, Any]:
        """The full record of one run (see record.py for its shape), from one snapshot."""
        self.flush()
        with self._lock, self._snapshot():
            runs = self._query("SELECT * FROM runs WHERE id = ?", [run_id])
            if not runs:
                raise UnknownRunError(self._name, f"no run with id {run_id!r}")
            run = runs[0]
            q = "SELECT * FROM {} WHERE run_id = ? ORDER BY seq"
            journal = self._query(
                "SELECT kind, utc, t, data FROM events WHERE run_id = ? AND kind IN "
                "('RunStarted', 'MonitorTripped', 'PromptRequested', 'PromptAnswered', 'LogMessage', "
                "'StartupChecked') "
                "ORDER BY seq", [run_id])
            last = self._query("SELECT utc FROM events WHERE run_id = ? ORDER BY seq DESC "
                               "LIMIT 1", [run_id])
            rows = [self._query(q.format(table), [run_id]) for table in (
                "instruments", "steps", "measurements", "series", "safe_actions")]
        run["status"] = self._status(run["status"], run.pop("writer"))
        return record_model.assemble(run, *rows, journal, last[0]["utc"] if last else None)

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        # One read transaction, so a record read while its run is being written is consistent.
        db = self._db()
        try:
            db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise StoreError(self._name, f"cannot read: {exc}") from exc
        try:
            yield
        finally:
            db.execute("COMMIT")

    def _query(self, sql: str, args: list[Any]) -> list[dict[str, Any]]:
        db = self._db()
        try:
            with self._lock:
                cur = db.execute(sql, args)
                names = [d[0] for d in cur.description]
                return [dict(zip(names, row)) for row in cur.fetchall()]
        except sqlite3.Error as exc:
            raise StoreError(self._name, f"cannot read: {exc}") from exc
