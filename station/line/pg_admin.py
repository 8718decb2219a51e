"""Admin side of the line database: ``station db migrate`` and ``station db retain``.

Run with an admin role (owner of the schema); stations and readers never need these rights.

- ``migrate``: create the schema (only with ``--create-schema``, so a typo never makes a new
  one), apply pending migrations, make monthly partitions ``MONTHS_AHEAD`` months ahead, grant
  the station role(s) DML and the reader role(s) SELECT. Run it at each upgrade and monthly.
- ``retain``: archive every month older than ``--keep-months`` to gzip'd CSV (one file per
  table, written and fsynced before anything is dropped), then drop that month's partitions
  and delete its runs. Genealogy (``pack_components``) is kept: its ``run_id`` becomes NULL.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import os
import re
import sys
from pathlib import Path

import psycopg
from psycopg import sql

from . import pg_migrate
from .pg_store import describe

_PART = re.compile(r"^([a-z_]+)_y(\d{4})m(\d{2})$")
EXIT_OK, EXIT_USAGE, EXIT_FAILED = 0, 2, 3


def _connect(url: str, schema: str | None) -> psycopg.Connection:
    options = "-c TimeZone=UTC" + (f" -c search_path={schema}" if schema else "")
    return psycopg.connect(url, autocommit=True, connect_timeout=5, options=options,
                           application_name="eol-db-admin")


def db_command(args: argparse.Namespace) -> int:
    """``station db ...``: 0 done, 2 usage, 3 the database refused or failed."""
    if args.db_command not in ("migrate", "retain"):
        print("usage: station db {migrate,retain} URL [--schema NAME] ...", file=sys.stderr)
        return EXIT_USAGE
    if args.schema is not None and not pg_migrate.SCHEMA_NAME.match(args.schema):
        print(f"station db: bad schema name {args.schema!r}", file=sys.stderr)
        return EXIT_USAGE
    name = describe(args.url, args.schema)
    if args.db_command == "retain" and not (args.archive or args.no_archive):
        print("station db retain: give --archive DIR (or --no-archive to drop without a copy)",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        with _connect(args.url, args.schema) as conn:
            if args.db_command == "migrate":
                done = pg_migrate.migrate(conn, args.schema, create_schema=args.create_schema,
                                          station_roles=tuple(args.station_role),
                                          reader_roles=tuple(args.reader_role))
                version = len(pg_migrate.migrations())
                print(f"{name}: at schema version {version}"
                      + (f" (applied {', '.join(map(str, done))})" if done else " (up to date)"))
                return EXIT_OK
            months = retain(conn, args.keep_months, None if args.no_archive else
                            Path(args.archive))
            print(f"{name}: {len(months)} month(s) archived and dropped"
                  + (f": {', '.join(months)}" if months else ""))
            return EXIT_OK
    except (psycopg.Error, pg_migrate.MigrationError, OSError) as exc:
        print(f"station db {args.db_command}: {name}: {str(exc).strip()}", file=sys.stderr)
        return EXIT_FAILED


def _month_start(day: dt.date, back: int) -> dt.date:
    index = day.year * 12 + day.month - 1 - back
    return dt.date(index // 12, index % 12 + 1, 1)


def retain(conn: psycopg.Connection, keep_months: int, archive: Path | None, *,
           today: dt.date | None = None) -> list[str]:
    """Archive (if ``archive``) and drop every month before the kept ones; returns 'YYYY-MM's."""
    if keep_months < 0:
        raise pg_migrate.MigrationError("--keep-months must be 0 or more")
    today = today or dt.datetime.now(dt.UTC).date()
    cutoff = _month_start(today, keep_months)
    tables = list(conn.execute("SELECT line_partitioned_tables()").fetchone()[0])
    parts: dict[dt.date, list[str]] = {}
    for (rel,) in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = "
            "p.relnamespace WHERE n.nspname = current_schema() AND p.relname = ANY(%s)",
            (tables,)).fetchall():
        m = _PART.match(rel)
        if m and m[1] in tables:
            month = dt.date(int(m[2]), int(m[3]), 1)
            if month < cutoff:
                parts.setdefault(month, []).append(rel)
    for (month,) in conn.execute(
            "SELECT DISTINCT date_trunc('month', started_utc)::date FROM runs "
            "WHERE started_utc < %s", (cutoff,)).fetchall():
        parts.setdefault(month, [])
    done = []
    for month in sorted(parts):
        nxt = _month_start(month, -1)
        label = month.strftime("%Y-%m")
        if archive is not None:
            folder = archive / label
            folder.mkdir(parents=True, exist_ok=True)
            _copy_out(conn, folder / "runs.csv.gz", sql.SQL(
                "SELECT * FROM runs WHERE started_utc >= {} AND started_utc < {}").format(
                    sql.Literal(month), sql.Literal(nxt)))
            for table in tables:
                _copy_out(conn, folder / f"{table}.csv.gz", sql.SQL(
                    "SELECT * FROM {} WHERE run_started >= {} AND run_started < {}").format(
                        sql.Identifier(table), sql.Literal(month), sql.Literal(nxt)))
        with conn.transaction():
            for rel in parts[month]:
                conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(rel)))
            conn.execute("DELETE FROM runs WHERE started_utc >= %s AND started_utc < %s",
                         (month, nxt))
        done.append(label)
    return done


def _copy_out(conn: psycopg.Connection, path: Path, query: sql.Composable) -> None:
    tmp = path.with_suffix(".tmp")
    copy_out = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER)").format(query)
    with gzip.open(tmp, "wb") as out, conn.cursor().copy(copy_out) as copy:
        for chunk in copy:
            out.write(chunk)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
