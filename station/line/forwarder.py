"""Store-and-forward: the station's local SQLite journal → the line's PostgreSQL, exactly once.

Every event is journalled locally first (``ResultStore``, the sequencer's critical
subscriber); nothing in a run waits for the network. The forwarder uploads each finished or
interrupted run, oldest first, events in ``seq`` order, in one PostgreSQL transaction, and
only after that commit marks the run uploaded in the local table ``line_uploads`` (in the
journal file). A crash between the two re-sends the run next time, which the store's
idempotent upserts turn into a no-op: at least once on the wire, exactly once in the database.
While the database is unreachable the runs stay queued locally; the forwarder retries with
exponential backoff (``backoff_s`` min → max, real seconds) and drains the queue in order when
it returns. A run is never skipped: a run that keeps failing holds back the ones behind it.

Delivery never changes a verdict: no error here reaches the run or the exit code. An error
retrying may not fix (the schema not migrated yet, a role without rights) is retried at the
longest backoff, since an admin may fix it any minute; every error is kept in the journal's
``line_delivery`` table (what ``station line status`` shows) and handed to ``on_state``.

A run is marked uploaded per *database identity* (``line_identity`` in the target schema, kept
per URL in ``line_targets``), so ``127.0.0.1`` and ``localhost`` are one target.

The forwarder runs on its own thread with its own real-time asyncio loop (``start``/``stop``),
because the database is a real peer in real time while the station's loop may run on virtual
time (station/clock.py): backoff sleeps there would spin, and a wait there would block runs.
``handle(event)`` is a sequencer subscriber that wakes it when a run finishes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from station.results import liveness
from station.results.store import StoreError

from .pg_rows import JournalEvent
from .pg_store import PgResultStore, PgStoreError, PgUnavailable

if TYPE_CHECKING:
    from station.events import Event

_AUDIT_DDL = ("CREATE TABLE IF NOT EXISTS line_audit_uploads (target TEXT PRIMARY KEY, last_seq "
              "INTEGER NOT NULL, uploaded_utc TEXT NOT NULL)")
_UPLOADS_DDL = ("CREATE TABLE IF NOT EXISTS line_uploads (run_id TEXT NOT NULL, target TEXT "
                "NOT NULL, events INTEGER NOT NULL, uploaded_utc TEXT NOT NULL, "
                "PRIMARY KEY (run_id, target))")
_TARGETS_DDL = ("CREATE TABLE IF NOT EXISTS line_targets (name TEXT PRIMARY KEY, target TEXT "
                "NOT NULL, seen_utc TEXT NOT NULL)")
DELIVERY_DDL = ("CREATE TABLE IF NOT EXISTS line_delivery (target TEXT PRIMARY KEY, name TEXT "
                "NOT NULL, last_ok_utc TEXT, last_error TEXT, last_error_utc TEXT)")


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def note_delivery(db: sqlite3.Connection, target: str, name: str, error: str | None) -> None:
    """Record the outcome of a delivery attempt to ``target`` in the journal."""
    if error is None:
        db.execute("INSERT INTO line_delivery (target, name, last_ok_utc) VALUES (?, ?, ?) ON "
                   "CONFLICT (target) DO UPDATE SET name=excluded.name, "
                   "last_ok_utc=excluded.last_ok_utc", (target, name, now_utc()))
    else:
        db.execute("INSERT INTO line_delivery (target, name, last_error, last_error_utc) VALUES "
                   "(?, ?, ?, ?) ON CONFLICT (target) DO UPDATE SET name=excluded.name, "
                   "last_error=excluded.last_error, last_error_utc=excluded.last_error_utc",
                   (target, name, error, now_utc()))


def _busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class ForwardError(StoreError):
    """An error retrying alone will not fix (e.g. a schema not migrated): kept, retried slowly."""


class Forwarder:
    """Uploads the runs of one local journal to one PostgreSQL store.

    ``journal``: the station's SQLite store file (must exist: open the ResultStore first).
    ``pg``: the target store (not yet opened; the forwarder opens and reopens it).
    ``source``: recorded with each run in PostgreSQL (default: the journal path).
    ``backoff_s``: (first, longest) retry delay after a failed upload, real seconds.
    ``poll_s``: look for runs to upload at least this often even without ``handle`` wake-ups.
    ``on_state``: called (on the forwarder's thread) after each pass with
    ``{"target", "name", "backlog", "error"}`` (alarms: MQTT, UI badge).
    """

    def __init__(self, journal: str | Path, pg: PgResultStore, *, source: str = "",
                 backoff_s: tuple[float, float] = (0.1, 10.0), poll_s: float = 2.0,
                 on_state: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.journal = Path(journal)
        self.pg = pg
        self.target: str | None = None  # "pg:<line_identity>", known after the first connect
        self.on_state = on_state
        self.source = source or str(self.journal)
        self.backoff_s = backoff_s
        self.poll_s = poll_s
        self.uploaded = 0  # runs whose upload committed in this session
        self.replayed = 0  # of those, runs PostgreSQL already had completely
        self.failures = 0  # failed upload attempts (database unreachable)
        self.last_error: str | None = None
        self.error: ForwardError | None = None  # the last pass's error retrying may not fix
        self._local: sqlite3.Connection | None = None
        self._idle = threading.Condition()
        self._pending = -1  # runs waiting, as of the last pass (-1 = not looked yet)
        self._pass = 0  # passes started; wait_idle only trusts a pass that began after it
        self._pending_pass = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None  # a run finished: look now
        self._stop: asyncio.Event | None = None  # the only thing that cuts a backoff short
        self._stopping = False

    # -- one pass (synchronous; the thread calls it, so can a CLI) --------------------------
    def _db(self) -> sqlite3.Connection:
        if self._local is None:
            if not self.journal.is_file():
                raise StoreError(self.journal, "no such result store to forward from")
            conn = sqlite3.connect(self.journal, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=5000")
            for ddl in (_UPLOADS_DDL, _TARGETS_DDL, DELIVERY_DDL, _AUDIT_DDL):
                conn.execute(ddl)
            known = conn.execute("SELECT target FROM line_targets WHERE name = ?",
                                 (self.pg.name,)).fetchone()
            self.target = self.target or (known[0] if known else None)
            self._local = conn
        return self._local

    def _connect(self) -> None:
        """Open the database and learn its identity (the target runs are marked for)."""
        self.pg.open()
        target = f"pg:{self.pg.identity}"
        if target != self.target:
            self._db().execute("INSERT OR REPLACE INTO line_targets VALUES (?, ?, ?)",
                               (self.pg.name, target, now_utc()))
            self.target = target

    def pending(self) -> list[tuple[str, str]]:
        """(run id, status) of runs to upload, oldest first: finished, or interrupted."""
        rows = self._db().execute(
            "SELECT id, status, writer FROM runs r WHERE NOT EXISTS (SELECT 1 FROM line_uploads "
            "u WHERE u.run_id = r.id AND u.target = ?) ORDER BY rowid", (self.target,)).fetchall()
        out = []
        for run_id, status, writer in rows:
            if status == "running" and not liveness.writer_alive(self.journal, writer):
                status = "interrupted"  # its writer is gone: nothing more will come
            if status in ("finished", "interrupted"):
                out.append((run_id, status))
        return out

    def forward_once(self) -> int:
        """Upload every pending run in order; returns how many were uploaded.

        Raises ``PgUnavailable`` (retry later) or ``PgStoreError`` / ``StoreError``.
        """
        with self._idle:
            self._pass += 1
            this_pass = self._pass
        db = self._db()
        if self.target is None:  # never reached: every run waits (known before the connect fails)
            self._set_pending(len(self.pending()), this_pass)
            self._connect()
        todo = self.pending()
        self._set_pending(len(todo), this_pass)
        audit = self._audit_pending(db)
        if not todo and not audit:
            return 0
        self._connect()
        if audit:
            self._forward_audit(db)
        todo = self.pending()  # the identity may have changed (a restored database)
        for n, (run_id, status) in enumerate(todo):
            events = [JournalEvent(*row) for row in db.execute(
                "SELECT seq, kind, utc, t, data FROM events WHERE run_id = ? ORDER BY seq",
                (run_id,))]
            new = self.pg.ingest(run_id, events, status=status, source=self.source,
                                 components=self._components(db, run_id))
            # Only now, after the PostgreSQL commit, is the run marked done here.
            db.execute("INSERT OR REPLACE INTO line_uploads VALUES (?, ?, ?, ?)",
                       (run_id, self.target, len(events),
                        dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")))
            self.uploaded += 1
            if new == 0 and events:  # PostgreSQL had it all: a replay after a lost mark
                self.replayed += 1
            self._set_pending(len(todo) - n - 1, this_pass)
        note_delivery(db, self.target, self.pg.name, None)
        return len(todo)

    # -- the audit log beside the journal (station.security.audit) ---------------------------
    @property
    def audit_path(self) -> Path:
        return self.journal.with_name("audit.jsonl")  # as station.security.audit.audit_path puts it

    def _audit_pending(self, db: sqlite3.Connection) -> list[dict[str, Any]]:
        """Audit entries past the last one this target has (every entry that parses, in order)."""
        if not self.audit_path.is_file():
            return []
        from station.security.audit import AuditLog

        row = db.execute("SELECT last_seq FROM line_audit_uploads WHERE target = ?", (self.target,)).fetchone()
        last = row[0] if row else 0
        return [e for e in AuditLog(self.audit_path).entries()
                if isinstance(e, dict) and isinstance(e.get("seq"), int) and e["seq"] > last
                and {"time", "kind", "prev", "hash"} <= e.keys()]

    def _forward_audit(self, db: sqlite3.Connection) -> int:
        entries = self._audit_pending(db)
        if not entries:
            return 0
        new = self.pg.ingest_audit(entries, source=self.source)
        db.execute("INSERT OR REPLACE INTO line_audit_uploads VALUES (?, ?, ?)",
                   (self.target, max(e["seq"] for e in entries), now_utc()))
        return new

    @staticmethod
    def _components(db: sqlite3.Connection, run_id: str) -> list[tuple[str, str, str]]:
        """Components the MES named for the run (mes_outbox.py), if that table exists."""
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'line_mes_components'"
                      ).fetchone() is None:
            return []
        return db.execute("SELECT kind, position, serial FROM line_mes_components WHERE "
                          "run_id = ? ORDER BY kind, position", (run_id,)).fetchall()

    def _set_pending(self, n: int, pass_no: int) -> None:
        with self._idle:
            self._pending, self._pending_pass = n, pass_no
            self._idle.notify_all()

    # -- the background thread ----------------------------------------------------------------
    def start(self) -> Forwarder:
        """Start forwarding on a background thread (checks the journal exists first)."""
        self._db()
        self._thread = threading.Thread(target=self._thread_main, name="line-forwarder",
                                        daemon=True)
        self._thread.start()
        return self

    def handle(self, event: Event) -> None:
        """Sequencer subscriber: a finished run is worth an upload attempt now."""
        if type(event).__name__ == "RunFinished":
            self.wake()

    def wake(self) -> None:
        self._signal(self._wake)

    def _signal(self, event: asyncio.Event | None) -> None:
        loop = self._loop
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until nothing is pending (True) or ``timeout_s`` real seconds pass (False).

        Blocking: from an event loop call it through ``loop.run_in_executor``.
        """
        with self._idle:
            after = self._pass
        self.wake()
        with self._idle:
            done = self._idle.wait_for(lambda: (self.error is not None and self._pass > after)
                                       or (self._pending == 0 and self._pending_pass > after),
                                       timeout_s)
        return done and self._pending == 0

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread (an upload in progress finishes first). Never raises: runs not yet
        uploaded stay queued in the journal, and the last error is in ``line_delivery``."""
        self._stopping = True
        self._signal(self._stop)
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self.pg.close()
        if self._local is not None:
            self._local.close()
            self._local = None

    def _thread_main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake, self._stop = asyncio.Event(), asyncio.Event()
        delay = self.backoff_s[0]
        while not self._stopping:
            self._wake.clear()
            try:
                self.forward_once()
                self.error = None
                wait, until, delay = self.poll_s, (self._wake, self._stop), self.backoff_s[0]
            except (PgUnavailable, sqlite3.OperationalError) as exc:
                if isinstance(exc, sqlite3.OperationalError) and not _busy(exc):
                    self._fail(f"cannot read the journal: {exc}")
                else:
                    self._note(str(exc))  # the database is away, or the journal briefly locked
                self.pg.close()
                wait, until = delay, (self._stop,)  # finished runs must not hurry a retry
                delay = min(delay * 2, self.backoff_s[1])
            except (PgStoreError, StoreError, sqlite3.Error) as exc:
                self._fail(f"forwarding to {self.pg.name} failed: {exc}")
                self.pg.close()
                wait, until, delay = self.backoff_s[1], (self._stop,), self.backoff_s[1]
            self._report()
            waiters = [asyncio.ensure_future(e.wait()) for e in until]
            await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()

    def _note(self, message: str) -> None:
        self.failures += 1
        self.last_error = message
        try:
            note_delivery(self._db(), self.target or f"pg?{self.pg.name}", self.pg.name, message)
        except (sqlite3.Error, StoreError):
            pass  # the journal itself is the problem; last_error and on_state still say it

    def _fail(self, message: str) -> None:
        self._note(message)
        self.error = ForwardError(self.journal, message)
        with self._idle:  # waiters must see the error, not time out
            self._idle.notify_all()

    def _report(self) -> None:
        if self.on_state is None:
            return
        with self._idle:
            backlog = self._pending
        self.on_state({"target": self.target or self.pg.name, "name": self.pg.name,
                       "backlog": backlog, "error": self.last_error if (
                           self.error is not None or backlog) else None})
