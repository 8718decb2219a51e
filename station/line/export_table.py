"""``station results export --format csv|parquet``: measurements as one flat table for BI tools.

One row per measurement with its run's context (serial, station, plan, variant, run verdict,
MES transaction id) and its limits as numbers (``lsl``/``usl``: the judged min/max). From the
station's SQLite store, or from the line's PostgreSQL (``--pg URL [--schema S]``), optionally
one run or a date range (UTC days, inclusive). Parquet needs pyarrow (the ``line`` extra).
"""

from __future__ import annotations

import csv
import json
import math
import sqlite3
from pathlib import Path
from typing import Any

from station.results.record import write_text_atomic

COLUMNS = ("run_id", "serial", "station_id", "fixture_id", "plan_id", "plan_version", "variant",
           "operator", "run_started_utc", "run_verdict", "mes_transaction_id", "path",
           "attempt", "measurement", "value", "value_text", "unit", "lsl", "usl", "verdict",
           "utc")


class ExportError(Exception):
    """The export cannot be made (source unreadable, bad format, pyarrow missing)."""


_SQLITE = """
SELECT r.id, r.serial, r.station_id, r.fixture_id, r.plan_id, r.plan_version, r.variant,
       r.operator, r.started_utc, r.verdict,
       (SELECT json_extract(e.data, '$.mes_transaction_id') FROM events e
        WHERE e.run_id = r.id AND e.kind = 'RunStarted'),
       m.path, m.attempt, m.name, m.value_num, m.value_json, m.unit, m.limits, m.verdict, m.utc
FROM measurements m JOIN runs r ON r.id = m.run_id
WHERE (?1 IS NULL OR r.id = ?1) AND (?2 IS NULL OR substr(r.started_utc, 1, 10) >= ?2)
  AND (?3 IS NULL OR substr(r.started_utc, 1, 10) <= ?3)
ORDER BY r.started_utc, r.id, m.seq
"""
_PG = """
SELECT r.id, r.serial, r.station_id, r.fixture_id, r.plan_id, r.plan_version, r.variant,
       r.operator, r.started_utc, r.verdict, r.mes_transaction_id,
       m.path, m.attempt, m.name, m.value_num, m.value_json::text, m.unit, m.limits::text,
       m.verdict, m.utc
FROM measurements m JOIN runs r ON r.id = m.run_id
WHERE (%(run)s::text IS NULL OR r.id = %(run)s)
  AND (%(since)s::date IS NULL OR m.run_started >= %(since)s::date)
  AND (%(until)s::date IS NULL OR m.run_started < %(until)s::date + 1)
ORDER BY r.started_utc, r.id, m.seq
"""


def _limit(limits: Any, key: str) -> float | None:
    value = limits.get(key) if isinstance(limits, dict) else None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _row(raw: tuple) -> dict[str, Any]:
    *head, value_num, value_json, unit, limits_text, verdict, utc = raw
    limits = json.loads(limits_text) if limits_text else {}
    value = json.loads(value_json) if value_json else None
    row = dict(zip(COLUMNS[:14], head))
    row.update(value=value_num, value_text=None if value_num is not None else (
        None if value is None else str(value)), unit=unit, lsl=_limit(limits, "min"),
        usl=_limit(limits, "max"), verdict=verdict, utc=utc)
    for key in ("run_started_utc", "utc"):
        if row[key] is not None and not isinstance(row[key], str):
            row[key] = row[key].isoformat(timespec="milliseconds")
    return row


def rows_from_sqlite(path: Path, run_id: str | None = None, since: str | None = None,
                     until: str | None = None) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ExportError(f"{path}: no such result store")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return [_row(r) for r in db.execute(_SQLITE, (run_id, since, until))]
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise ExportError(f"{path}: cannot read: {exc}") from exc


def rows_from_pg(url: str, schema: str | None, run_id: str | None = None,
                 since: str | None = None, until: str | None = None) -> list[dict[str, Any]]:
    import psycopg

    from .pg_store import PgResultStore, PgStoreError, describe

    try:
        with PgResultStore(url, schema=schema, application_name="eol-export") as store, store._db().cursor() as cur:
            cur.execute(_PG, {"run": run_id, "since": since, "until": until})
            return [_row(r) for r in cur]
    except (PgStoreError, psycopg.Error) as exc:
        raise ExportError(f"{describe(url, schema)}: {exc}") from exc


def write(rows: list[dict[str, Any]], path: str | Path, fmt: str) -> None:
    """Write ``rows`` as CSV (header row, UTF-8) or Parquet (typed columns)."""
    path = Path(path)
    if fmt == "csv":
        import io

        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_text_atomic(path, buffer.getvalue())
    elif fmt == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise ExportError("Parquet needs pyarrow: pip install 'eol-station[line]'") from exc
        types = {"attempt": pa.int32(), "value": pa.float64(), "lsl": pa.float64(),
                 "usl": pa.float64()}
        schema = pa.schema([(c, types.get(c, pa.string())) for c in COLUMNS])
        table = pa.Table.from_pylist(rows, schema=schema)
        tmp = path.with_name(path.name + ".tmp")
        pq.write_table(table, tmp)
        tmp.replace(path)
    else:
        raise ExportError(f"unknown format {fmt!r} (csv or parquet)")
