"""``station line status``: what the station still has to deliver, per target, from its journal.

Reads the station's SQLite journal only (read-only, works with the network down): for the line
database, runs not yet marked uploaded to it (``line_uploads``, per database identity); for
the MES, queued uploads (``line_mes_outbox``); for each, the oldest item waiting and the last
error and success (``line_delivery``). Exit 0 when nothing waits, 1 when a backlog exists,
2 when the journal cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from station.results import liveness


def _table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
                      (name,)).fetchone() is not None


def status(journal: Path, pg_name: str | None = None, mes_name: str | None = None
           ) -> list[dict[str, Any]]:
    """One dict per target: target, name, backlog, oldest_utc, last_ok_utc, last_error(_utc)."""
    db = sqlite3.connect(f"{journal.resolve().as_uri()}?mode=ro", uri=True)
    try:
        db.execute("PRAGMA busy_timeout=5000")
        delivery = {r[0]: r for r in db.execute(
            "SELECT target, name, last_ok_utc, last_error, last_error_utc FROM line_delivery")
        } if _table(db, "line_delivery") else {}
        targets = dict(db.execute("SELECT name, target FROM line_targets")) \
            if _table(db, "line_targets") else {}
        out = []
        pg_targets = {t: n for n, t in targets.items()}
        unreached = {t[3:] for t in delivery if t.startswith("pg?")}
        for name in unreached | ({pg_name} if pg_name else set()):
            if name not in targets:
                pg_targets[f"pg?{name}"] = name  # never reached yet: everything waits
        for target, name in sorted(pg_targets.items()):
            uploaded = {r[0] for r in db.execute(
                "SELECT run_id FROM line_uploads WHERE target = ?", (target,))} \
                if _table(db, "line_uploads") else set()
            waiting = [(rid, started) for rid, status, writer, started in db.execute(
                "SELECT id, status, writer, started_utc FROM runs ORDER BY rowid")
                if rid not in uploaded and (status != "running"
                                            or not liveness.writer_alive(journal, writer))]
            out.append(_row(target, name, len(waiting), min(
                (s for _, s in waiting if s), default=None), delivery.get(target)))
        if _table(db, "line_mes_outbox") or mes_name is not None:
            rows = db.execute("SELECT count(*), min(queued_utc) FROM line_mes_outbox WHERE "
                              "delivered_utc IS NULL").fetchone() \
                if _table(db, "line_mes_outbox") else (0, None)
            names = [t for t in delivery if t.startswith("mes:")] or \
                [f"mes:{mes_name or 'MES'}"]
            for target in names:
                out.append(_row(target, target[4:], rows[0], rows[1], delivery.get(target)))
        return out
    finally:
        db.close()


def _row(target: str, name: str, backlog: int, oldest: str | None,
         delivery: tuple | None) -> dict[str, Any]:
    _, _, ok, error, error_utc = delivery or (None, None, None, None, None)
    return {"target": target, "name": name, "backlog": backlog, "oldest_utc": oldest,
            "last_ok_utc": ok, "last_error": error, "last_error_utc": error_utc}


def line_command(args: argparse.Namespace) -> int:
    if getattr(args, "line_command", None) != "status":
        print("usage: station line status [--station FILE] [--db FILE] [--json]", file=sys.stderr)
        return 2
    pg_name = mes_name = None
    journal = Path(args.db) if args.db else None
    if args.station:
        from station.config import load_config
        from station.line.pg_store import describe

        loaded = load_config(args.station)
        cfg = loaded.config
        journal = journal or loaded.resolve_path(cfg.results.db)
        if cfg.results.postgres_url:
            pg_name = describe(cfg.results.postgres_url, cfg.results.postgres_schema)
        if cfg.mes is not None:
            mes_name = (f"HTTP MES {cfg.mes.url.rstrip('/')}" if cfg.mes.type == "http"
                        else f"file MES {loaded.resolve_path(cfg.mes.folder)}")
    if journal is None:
        print("station line status: give --station FILE or --db FILE", file=sys.stderr)
        return 2
    if not journal.is_file():
        print(f"station line status: {journal}: no such journal", file=sys.stderr)
        return 2
    try:
        rows = status(journal, pg_name, mes_name)
    except sqlite3.Error as exc:
        print(f"station line status: {journal}: cannot read: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"{'target':<44} {'backlog':>7}  {'oldest waiting':<29}  last error")
        for r in rows:
            error = f"{r['last_error_utc']} {' '.join(r['last_error'].split())}" \
                if r["last_error"] else "-"  # one line per target
            print(f"{r['name'][:44]:<44} {r['backlog']:>7}  {r['oldest_utc'] or '-':<29}  "
                  f"{error}")
    return 1 if any(r["backlog"] for r in rows) else 0
