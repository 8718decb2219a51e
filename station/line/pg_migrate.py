"""Versioned migrations of the PostgreSQL result schema (``migrations/NNNN_name.sql``).

Least privilege: only ``station db migrate`` (run by an admin role) changes the schema —
``migrate`` creates the schema if asked, applies pending files, makes the monthly partitions
ahead and grants the station and reader roles what they need. Stations call ``check`` only: it
reads ``schema_migrations`` and needs no right beyond SELECT.

Rolling upgrades: a database one (or more) versions newer than the station is fine as long as
every newer migration is additive (new tables, new nullable columns, new indexes or views):
the station writes with explicit column lists and never reads ``SELECT *`` into positions. A
migration whose first line starts with ``-- breaking`` marks the versions before it as unable
to write; a station older than a breaking migration is refused with a message saying so.

All pending files run in one transaction that first takes a transaction-level advisory lock, so
two admins migrating at once never race (the loser waits, then finds nothing left to do). Each
applied file is recorded with its sha256; an applied file whose text changed is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from .config import SCHEMA_NAME

# pg_advisory_xact_lock takes one bigint; any constant shared by all admins will do.
LOCK_KEY = int.from_bytes(b"EOL-LINE", "big") & 0x7FFF_FFFF_FFFF_FFFF
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
MONTHS_AHEAD = 3  # partitions made ahead by every migrate (run it monthly, e.g. from cron)

# What the station role may do: write its runs (upserts), read what it checks. No DELETE, no DDL.
STATION_TABLES = ("runs", "instruments", "steps", "measurements", "series", "safe_actions",
                  "events", "pack_components", "audit_log")
STATION_READ = ("schema_migrations", "line_identity")


class MigrationError(Exception):
    """The database schema cannot be brought to, or used at, this software's version."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def breaking(self) -> bool:
        return self.sql.lstrip().lower().startswith("-- breaking")


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


def schema_exists(conn: psycopg.Connection, schema: str) -> bool:
    return conn.execute("SELECT to_regnamespace(%s) IS NOT NULL", (schema,)).fetchone()[0]


def _applied(conn: psycopg.Connection) -> dict[int, tuple[str, bool]]:
    rows = conn.execute("SELECT version, sha256, breaking FROM schema_migrations").fetchall()
    return {v: (sha, bool(breaking)) for v, sha, breaking in rows}


def _verify(applied: dict[int, tuple[str, bool]], known: list[Migration], *,
            station: bool) -> None:
    for m in known:
        if m.version in applied and applied[m.version][0] != m.sha256:
            raise MigrationError(f"migration {m.version:04d}_{m.name} changed after it was "
                                 f"applied (sha256 differs); add a new migration instead")
    newer = sorted(v for v in applied if v > len(known))
    if not station and newer:
        raise MigrationError(f"database schema version {newer[-1]} is newer than this "
                             f"software's {len(known)}: migrate with the newer software")
    breaking = [v for v in newer if applied[v][1]]
    if breaking:
        raise MigrationError(f"database schema version {max(newer)} is newer than this "
                             f"software's {len(known)} and version {breaking[0]} is not "
                             f"additive: upgrade this station's software")


def check(conn: psycopg.Connection, schema: str | None = None) -> int:
    """The station's check (SELECT only): every migration this software knows is applied
    unchanged, and anything newer is additive. Returns the database's version."""
    known = migrations()
    where = f"schema {schema!r}" if schema else "the search_path"
    if schema is not None and not schema_exists(conn, schema):
        raise MigrationError(f"no schema {schema!r} in this database (check the name; "
                             f"`station db migrate` creates and migrates it)")
    if conn.execute("SELECT to_regclass('schema_migrations')").fetchone()[0] is None:
        raise MigrationError(f"{where} holds no result tables: run `station db migrate`")
    try:
        applied = _applied(conn)
    except psycopg.errors.UndefinedColumn as exc:
        raise MigrationError(f"{where} was made by older software: run `station db migrate`"
                             ) from exc
    missing = [m for m in known if m.version not in applied]
    if missing:
        raise MigrationError(f"{where} is at version {max(applied, default=0)}, this software "
                             f"needs {len(known)}: run `station db migrate`")
    _verify(applied, known, station=True)
    return max(applied)


def migrate(conn: psycopg.Connection, schema: str | None = None, *, create_schema: bool = True,
            station_roles: tuple[str, ...] = (), reader_roles: tuple[str, ...] = (),
            today: dt.date | None = None) -> list[int]:
    """Apply pending migrations, make partitions ahead, grant roles; returns versions applied.

    ``conn`` must be in autocommit mode (the transaction is ours) with ``search_path`` already
    naming ``schema`` when one is used. Roles given once are remembered (``line_roles``) and
    granted again by every later migrate, so new tables reach them too.
    """
    known = migrations()
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        if schema is not None:
            if not SCHEMA_NAME.match(schema):
                raise MigrationError(f"bad schema name {schema!r}")
            if not create_schema and not schema_exists(conn, schema):
                raise MigrationError(f"no schema {schema!r} (give --create-schema to make it)")
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                     "name TEXT NOT NULL, sha256 TEXT NOT NULL, "
                     "applied_utc TIMESTAMPTZ NOT NULL DEFAULT now())")
        conn.execute("ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS breaking BOOLEAN "
                     "NOT NULL DEFAULT false")
        conn.execute("CREATE TABLE IF NOT EXISTS line_roles (role TEXT NOT NULL, kind TEXT NOT "
                     "NULL CHECK (kind IN ('station', 'reader')), PRIMARY KEY (role, kind))")
        applied = _applied(conn)
        _verify(applied, known, station=False)
        todo = [m for m in known if m.version not in applied]
        for m in todo:
            conn.execute(m.sql.encode())  # several statements, no parameters
            conn.execute("INSERT INTO schema_migrations (version, name, sha256, breaking) "
                         "VALUES (%s, %s, %s, %s)", (m.version, m.name, m.sha256, m.breaking))
        ensure_partitions(conn, today or dt.datetime.now(dt.UTC).date(), MONTHS_AHEAD)
        for kind, roles in (("station", station_roles), ("reader", reader_roles)):
            for role in roles:
                conn.execute("INSERT INTO line_roles VALUES (%s, %s) ON CONFLICT DO NOTHING",
                             (role, kind))
        _grant(conn, schema)
    return [m.version for m in todo]


def ensure_partitions(conn: psycopg.Connection, first: dt.date, months_ahead: int = 0) -> int:
    """Monthly partitions from ``first``'s month to ``months_ahead`` months later (admin)."""
    made = 0
    month = first.replace(day=1)
    for _ in range(months_ahead + 1):
        made += conn.execute("SELECT line_ensure_month(%s)", (month,)).fetchone()[0]
        month = (month + dt.timedelta(days=32)).replace(day=1)
    return made


def _grant(conn: psycopg.Connection, schema: str | None) -> None:
    ns = sql.Identifier(schema) if schema else sql.SQL("{}").format(
        sql.Identifier(conn.execute("SELECT current_schema()").fetchone()[0]))
    for role, kind in conn.execute("SELECT role, kind FROM line_roles ORDER BY 1, 2").fetchall():
        who = sql.Identifier(role)
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(ns, who))
        if kind == "station":
            tables = sql.SQL(", ").join(sql.Identifier(t) for t in STATION_TABLES)
            conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE ON {} TO {}").format(tables, who))
            read = sql.SQL(", ").join(sql.Identifier(t) for t in STATION_READ)
            conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(read, who))
        else:
            conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA {} TO {}").format(ns, who))
