"""Append-only, hash-chained audit log (JSON Lines) of logins, releases, refusals, aborts,
overrides and config changes.

Kinds: ``login`` / ``logout``; ``release``; ``refusal`` (``fields.what`` says which: release
refused, role denied, authentication failed, store mode mismatch, start-up not safe); ``abort``;
``override`` (a safe-state or start-up finding overridden by a person); ``config_change`` (the
station config's sha256 differs from the last run's). The log lives beside the result store
(``audit.jsonl``), and every run records the log's head hash at its start, so a run record
anchors the chain: entries removed from the end before that run are detectable too.

Each line is one entry::

    {"seq": 7, "time": "2026-11-25T18:02:11.123456+00:00", "kind": "abort",
     "fields": {...}, "prev": "<hash of entry 6>", "hash": "<sha256 of this entry without 'hash'>"}

``hash`` is the sha256 of the entry's canonical JSON (sorted keys, no spaces) without ``hash``;
``prev`` links it to the entry before (64 zeros for the first). Editing, inserting, deleting or
reordering any line breaks the chain and ``verify()`` names the line. Removing the *last* lines
cannot be seen from the file alone: keep ``head()`` somewhere else (the run record, a line
server) if that matters. Appends take an exclusive ``flock`` so the station and ``station
release`` can write the same file, and are fsync'd: an entry that returned is on disk.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from station.config import LoadedConfig

KINDS = ("login", "logout", "release", "refusal", "abort", "override", "config_change", "make_safe",
         "clear_protection")
GENESIS = "0" * 64
_TAIL = 65536  # bytes read from the end to find the last entry


def entry_hash(entry: dict[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of ``entry`` without its ``hash`` key."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def audit_path(config: LoadedConfig, db: str | Path | None = None) -> Path | None:
    """Where a station keeps its audit log: ``audit.jsonl`` beside its result store (``db``,
    when a run names another store than the config's); None for an in-memory store (its audit
    entries live as long as it does, instead of landing in the working directory)."""
    if db is not None and str(db) == ":memory:":
        return None
    store = Path(db) if db else config.resolve_path(config.config.results.db)
    return store.with_name("audit.jsonl")


class AuditLog:
    """One audit file (``path`` None: kept in memory, for a run on an in-memory store). No I/O
    until ``append`` / ``entries`` / ``verify``."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path is not None else None
        self._memory: list[str] = []  # the lines of a log without a file

    def append(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Append one entry of ``kind`` (one of ``KINDS``) with JSON-able ``fields``; return it."""
        if kind not in KINDS:
            raise ValueError(f"unknown audit entry kind {kind!r}; kinds: {', '.join(KINDS)}")
        json.dumps(fields)  # refuse what cannot be recorded before touching the file
        if self.path is None:
            return self._append_in_memory(kind, fields)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            last = _last_entry(fd)
            entry = _entry_after(last, kind, fields)
            line = _line(entry)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = "\n" + line  # end a torn last line so this entry stays whole
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock
        return entry

    def _append_in_memory(self, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        last = json.loads(self._memory[-1]) if self._memory else None
        entry = _entry_after(last, kind, fields)
        self._memory.append(_line(entry).rstrip("\n"))
        return entry

    def entries(self) -> list[dict[str, Any]]:
        """Every entry that parses (use ``verify`` to know whether they can be trusted)."""
        out = []
        for _n, raw in self._lines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                continue
        return out

    def head(self) -> str:
        """Hash of the last entry (``GENESIS`` for an empty or missing log): an anchor to keep elsewhere."""
        entries = self.entries()
        return entries[-1].get("hash", GENESIS) if entries else GENESIS

    def verify(self) -> list[str]:
        """Problems found in the chain, one ``PATH:LINE: message`` each; empty means intact."""
        problems: list[str] = []
        prev, seq = GENESIS, 0
        for number, raw in self._lines():
            where = f"{self.path}:{number}"
            try:
                entry = json.loads(raw)
            except ValueError:
                problems.append(f"{where}: not a JSON entry")
                continue
            if not isinstance(entry, dict) or not {"seq", "kind", "prev", "hash"} <= entry.keys():
                problems.append(f"{where}: not an audit entry")
                continue
            if entry["hash"] != entry_hash(entry):
                problems.append(f"{where}: entry {entry.get('seq')} was altered (hash mismatch)")
            if entry["prev"] != prev:
                problems.append(f"{where}: chain broken before entry {entry.get('seq')} (an entry was removed, inserted or reordered)")
            if entry["seq"] != seq + 1:
                problems.append(f"{where}: sequence jumps from {seq} to {entry['seq']}")
            prev = entry["hash"]
            seq = entry["seq"] if isinstance(entry["seq"], int) else seq + 1
        return problems

    def _lines(self) -> list[tuple[int, str]]:
        if self.path is None:
            return list(enumerate(self._memory, 1))
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        return [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _entry_after(last: dict[str, Any] | None, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The entry that follows ``last`` (None: the first), with its hash."""
    entry: dict[str, Any] = {
        "seq": last["seq"] + 1 if last else 1,
        "time": dt.datetime.now(dt.UTC).isoformat(),
        "kind": kind,
        "fields": fields,
        "prev": last["hash"] if last else GENESIS,
    }
    entry["hash"] = entry_hash(entry)
    return entry


def _line(entry: dict[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def _last_entry(fd: int) -> dict[str, Any] | None:
    """The last complete entry of the open file, read from its tail."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    start = max(0, size - _TAIL)
    data = os.pread(fd, size - start, start)
    lines = [line for line in data.split(b"\n") if line.strip()]
    if start > 0:
        lines = lines[1:]  # the first piece may be a partial line
    for raw in reversed(lines):
        try:
            entry = json.loads(raw)
        except ValueError:
            continue  # a torn last line (power loss): chain on from the last whole entry
        if isinstance(entry, dict) and "hash" in entry and isinstance(entry.get("seq"), int):
            return entry
    return None
