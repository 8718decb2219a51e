"""Store-and-forward of MES uploads: a run's record reaches the MES exactly once, later if need be.

After a run the record is *queued* in the station's journal (table ``line_mes_outbox``, one
row per run with the route check's transaction id) and the run is over: its verdict and exit
code never wait on, or change with, the MES. A thread with its own real-time asyncio loop
delivers queued uploads oldest first, retrying with exponential backoff (``backoff_s``) while
the MES answers errors (503, timeouts, refused connections); the record is read back from the
journal at each attempt, so a queue survives restarts and a crash. An upload the MES took is
marked delivered (at least once on the wire: an MES should treat a repeated transaction id as
the same upload). Attempts, the last error and its time are kept for ``station line status``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from station.results.store import ResultStore, StoreError

from .forwarder import DELIVERY_DDL, note_delivery, now_utc
from .mes import Mes, MesError

COMPONENTS_DDL = ("CREATE TABLE IF NOT EXISTS line_mes_components (run_id TEXT NOT NULL, "
                  "kind TEXT NOT NULL, position TEXT NOT NULL, serial TEXT NOT NULL, "
                  "PRIMARY KEY (run_id, kind, position))")
OUTBOX_DDL = ("CREATE TABLE IF NOT EXISTS line_mes_outbox (run_id TEXT PRIMARY KEY, "
              "transaction_id TEXT NOT NULL, queued_utc TEXT NOT NULL, attempts INTEGER NOT "
              "NULL DEFAULT 0, last_error TEXT, last_try_utc TEXT, delivered_utc TEXT)")


class MesOutbox:
    """Queued MES uploads of one journal. ``target`` names it in ``line_delivery``."""

    def __init__(self, journal: str | Path, mes: Mes, *,
                 backoff_s: tuple[float, float] = (0.5, 60.0), poll_s: float = 5.0,
                 on_state: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.journal = Path(journal)
        self.mes = mes
        self.target = f"mes:{mes.name}"
        self.backoff_s, self.poll_s, self.on_state = backoff_s, poll_s, on_state
        self.delivered = 0
        self.last_error: str | None = None
        self._local: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._idle = threading.Condition()
        self._backlog = -1
        self._passes = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._stopping = False

    def _db(self) -> sqlite3.Connection:
        if self._local is None:
            conn = sqlite3.connect(self.journal, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute(OUTBOX_DDL)
            conn.execute(COMPONENTS_DDL)
            conn.execute(DELIVERY_DDL)
            self._local = conn
        return self._local

    def enqueue(self, run_id: str, transaction_id: str) -> None:
        """Queue the upload of a finished run (idempotent per run) and wake the thread."""
        with self._lock:
            self._db().execute("INSERT OR IGNORE INTO line_mes_outbox (run_id, transaction_id, "
                               "queued_utc) VALUES (?, ?, ?)", (run_id, transaction_id, now_utc()))
        self.wake()

    def note_components(self, run_id: str, components: tuple[tuple[str, str, str], ...]) -> None:
        """Keep the components the MES named for a run (the forwarder takes them along)."""
        with self._lock:
            self._db().executemany("INSERT OR REPLACE INTO line_mes_components VALUES "
                                   "(?, ?, ?, ?)", [(run_id, *c) for c in components])

    def queued(self) -> list[tuple[str, str]]:
        """(run id, transaction id) not yet delivered, oldest first."""
        with self._lock:
            return self._db().execute(
                "SELECT run_id, transaction_id FROM line_mes_outbox WHERE delivered_utc IS NULL "
                "ORDER BY queued_utc, rowid").fetchall()

    async def deliver_once(self) -> int:
        """Upload every queued record in order; raises ``MesError`` at the first refusal."""
        todo = self.queued()
        self._set_backlog(len(todo))
        if not todo:
            return 0
        with ResultStore(self.journal, readonly=True) as store:
            for n, (run_id, txid) in enumerate(todo):
                record = store.record(run_id)
                try:
                    await self.mes.upload(record, txid)
                except MesError as exc:
                    with self._lock:
                        self._db().execute(
                            "UPDATE line_mes_outbox SET attempts = attempts + 1, last_error = ?, "
                            "last_try_utc = ? WHERE run_id = ?", (str(exc), now_utc(), run_id))
                        note_delivery(self._db(), self.target, self.mes.name, str(exc))
                    raise
                with self._lock:
                    self._db().execute(
                        "UPDATE line_mes_outbox SET attempts = attempts + 1, delivered_utc = ?, "
                        "last_try_utc = ? WHERE run_id = ?", (now_utc(), now_utc(), run_id))
                    note_delivery(self._db(), self.target, self.mes.name, None)
                self.delivered += 1
                self._set_backlog(len(todo) - n - 1)
        return len(todo)

    def _set_backlog(self, n: int) -> None:
        with self._idle:
            self._backlog = n
            self._idle.notify_all()

    # -- the thread ---------------------------------------------------------------------------
    def start(self) -> MesOutbox:
        self._db()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()),
                                        name="line-mes-outbox", daemon=True)
        self._thread.start()
        return self

    def wake(self) -> None:
        loop, event = self._loop, self._wake
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until the queue is empty (True) or a pass failed / ``timeout_s`` passed."""
        with self._idle:
            after = self._passes
        self.wake()
        with self._idle:
            self._idle.wait_for(lambda: self._passes > after, timeout_s)
            return self._backlog == 0

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the thread; queued uploads stay in the journal for the next start."""
        self._stopping = True
        loop, event = self._loop, self._stop
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        with self._lock:
            if self._local is not None:
                self._local.close()
                self._local = None

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake, self._stop = asyncio.Event(), asyncio.Event()
        delay = self.backoff_s[0]
        while not self._stopping:
            self._wake.clear()
            try:
                await self.deliver_once()
                self.last_error = None
                wait, until, delay = self.poll_s, (self._wake, self._stop), self.backoff_s[0]
            except (MesError, StoreError, sqlite3.Error) as exc:
                self.last_error = str(exc)
                wait, until = delay, (self._stop,)
                delay = min(delay * 2, self.backoff_s[1])
            with self._idle:
                self._passes += 1
                self._idle.notify_all()
            if self.on_state is not None:
                self.on_state({"target": self.target, "name": self.mes.name,
                               "backlog": self._backlog, "error": self.last_error})
            waiters = [asyncio.ensure_future(e.wait()) for e in until]
            await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
