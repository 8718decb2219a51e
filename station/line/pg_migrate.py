"""Versioned migrations of the PostgreSQL result schema (``migrations/NNNN_name.sql``).

Applied by the station itself on ``PgResultStore.open()``: all pending files in one
transaction that first takes a transaction-level advisory lock, so several stations starting at
once never race on ``CREATE TABLE`` (the loser waits, then finds nothing left to do). Each
applied file is recorded in ``schema_migrations`` with its sha256; an applied file whose text
changed since, or a database newer than this software, is refused rather than guessed at.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from .config import SCHEMA_NAME

# pg_advisory_xact_lock takes one bigint; any constant shared by all stations will do.
LOCK_KEY = int.from_bytes(b"EOL-LINE", "big") & 0x7FFF_FFFF_FFFF_FFFF
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(Exception):
    """The database schema cannot be brought to this software's version."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations() -> list[Migration]:
    """The migration files shipped with this package, in version order."""
    found = []
    for entry in resources.files("station.line").joinpath("migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise MigrationError(f"migration files must be numbered 1..n without gaps: "
                             f"{[m.version for m in found]}")
    return found


def migrate(conn: psycopg.Connection, schema: str | None = None) -> list[int]:
    """Apply pending migrations (creating ``schema`` if given); returns the versions applied.

    ``conn`` must be in autocommit mode (the transaction is ours) with ``search_path`` already
    naming ``schema`` when one is used.
    """
    known = migrations()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        if schema is not None:
            if not SCHEMA_NAME.match(schema):
                raise MigrationError(f"bad schema name {schema!r}")
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                     "name TEXT NOT NULL, sha256 TEXT NOT NULL, "
                     "applied_utc TIMESTAMPTZ NOT NULL DEFAULT now())")
        applied = dict(conn.execute("SELECT version, sha256 FROM schema_migrations").fetchall())
        newest = max(applied, default=0)
        if newest > len(known):
            raise MigrationError(f"database schema version {newest} is newer than this "
                                 f"software's {len(known)}")
        for m in known:
            if m.version in applied and applied[m.version] != m.sha256:
                raise MigrationError(f"migration {m.version:04d}_{m.name} changed after it was "
                                     f"applied (sha256 differs); add a new migration instead")
        todo = [m for m in known if m.version not in applied]
        for m in todo:
            conn.execute(m.sql.encode())  # several statements, no parameters
            conn.execute("INSERT INTO schema_migrations (version, name, sha256) "
                         "VALUES (%s, %s, %s)", (m.version, m.name, m.sha256))
    return [m.version for m in todo]
