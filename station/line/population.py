"""Which runs an analysis counts, and how it reads them: filters, grouping keys, dates, sources.

A *population* is the set of runs one statistic describes. Mixing populations gives wrong
figures (a mean bus voltage of car and bus packs describes neither), so every analysis groups
by product (the plan id), plan version and variant, and on request by station and fixture.
By default only **production** runs count: recorded by a station in production mode, not
simulated, without injected faults, and finished. Development, simulated, fault-injected and
interrupted runs are each opt-in (``--include-...``).

Sources: a station's SQLite store (opened read-only) or the line's PostgreSQL database
(``postgresql://...``, opened with ``default_transaction_read_only``, so a SELECT-only role
works and nothing is ever written). SQL is written once with ``:name`` parameters and a few
dialect expressions (``Source.day`` …); the aggregation runs in the database.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from station.results.store import StoreError

GROUP_BY = ("station", "fixture")  # the optional keys; product, version and variant always


class UsageProblem(ValueError):
    """A bad option value (exit 2)."""


_REL = re.compile(r"^-(\d+)d$")


def parse_day(text: str, *, option: str, today: dt.date | None = None) -> dt.date:
    """``YYYY-MM-DD``, ``today``, ``yesterday`` or ``-Nd`` (N days before today, UTC)."""
    today = today or dt.datetime.now(dt.UTC).date()
    raw = text.strip().lower()
    if raw == "today":
        return today
    if raw == "yesterday":
        return today - dt.timedelta(days=1)
    rel = _REL.match(raw)
    if rel:
        return today - dt.timedelta(days=int(rel.group(1)))
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        raise UsageProblem(f"{option} {text!r}: not a date (YYYY-MM-DD, today, yesterday or -Nd)")
    try:
        return dt.date.fromisoformat(raw)
    except ValueError as exc:
        raise UsageProblem(f"{option} {text!r}: {exc}") from None


@dataclass(frozen=True)
class Population:
    """Filters on runs and the grouping keys."""

    since: dt.date | None = None
    until: dt.date | None = None  # inclusive
    station: str | None = None
    fixture: str | None = None
    product: str | None = None
    variant: str | None = None
    by: tuple[str, ...] = ()  # subset of GROUP_BY
    development: bool = False
    simulated: bool = False
    faults: bool = False
    interrupted: bool = False
    serials: tuple[str, ...] | None = None  # only these packs (golden packs, MSA parts)

    @property
    def keys(self) -> list[str]:
        """Names of the grouping columns, in order."""
        return ["product", "plan_version", "variant"] + [k for k in GROUP_BY if k in self.by]

    def key_sql(self, r: str = "r") -> list[str]:
        cols = {"product": f"COALESCE({r}.plan_id, '?')", "plan_version": f"COALESCE({r}.plan_version, '')",
                "variant": f"COALESCE({r}.variant, '')", "station": f"COALESCE({r}.station_id, '?')",
                "fixture": f"COALESCE({r}.fixture_id, '?')"}
        return [f"{cols[k]} AS {k}" for k in self.keys]

    def where(self, r: str = "r", *, dates: bool = True) -> tuple[str, dict[str, Any]]:
        """The WHERE clause (without ``WHERE``) selecting the population, and its parameters."""
        sql, params = [], {}
        if not self.development:
            sql.append(f"{r}.station_mode = 'production'")
        if not self.simulated:
            sql.append(f"COALESCE(CAST({r}.simulated AS INTEGER), 0) = 0")
        if not self.faults:
            sql.append(f"({r}.faults IS NULL OR CAST({r}.faults AS TEXT) IN ('[]', '{{}}', 'null', ''))")
        sql.append(f"{r}.status IN ('finished', 'interrupted')" if self.interrupted
                   else f"{r}.status = 'finished'")
        for col, value, name in ((f"{r}.station_id", self.station, "p_station"),
                                 (f"{r}.fixture_id", self.fixture, "p_fixture"),
                                 (f"{r}.plan_id", self.product, "p_product"),
                                 (f"{r}.variant", self.variant, "p_variant")):
            if value is not None:
                sql.append(f"{col} = :{name}")
                params[name] = value
        if self.serials is not None:
            names = [f"p_serial{i}" for i in range(len(self.serials))]
            sql.append(f"{r}.serial IN ({', '.join(':' + n for n in names)})" if names else "0 = 1")
            params.update(zip(names, self.serials))
        if dates:
            more, dparams = self.date_where(r)
            sql.append(more)
            params.update(dparams)
        return " AND ".join(sql) or "1 = 1", params

    def date_where(self, r: str = "r") -> tuple[str, dict[str, Any]]:
        """Only the day filter (ISO text compares as time in SQLite; a timestamptz cast in PG)."""
        sql, params = ["1 = 1"], {}
        if self.since is not None:
            sql.append(f"{r}.started_utc >= :p_since")
            params["p_since"] = f"{self.since.isoformat()}T00:00:00+00:00"
        if self.until is not None:
            sql.append(f"{r}.started_utc < :p_until")
            params["p_until"] = f"{(self.until + dt.timedelta(days=1)).isoformat()}T00:00:00+00:00"
        return " AND ".join(sql), params

    def describe(self) -> str:
        """One line saying which runs count."""
        kinds = ["production"] + [k for k, on in (("development", self.development),
                                                  ("simulated", self.simulated),
                                                  ("fault-injected", self.faults),
                                                  ("interrupted", self.interrupted)) if on]
        span = f"{self.since or '…'} .. {self.until or '…'}"
        return f"runs: {', '.join(kinds)}; days {span} (UTC); grouped by {', '.join(self.keys)}"


_PARAM = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


@dataclass
class Source:
    """A read-only connection to a result store of either dialect."""

    name: str
    dialect: str  # "sqlite" | "pg"
    conn: Any
    _cursors: int = field(default=0)

    # -- dialect expressions ---------------------------------------------------------------------
    def day(self, col: str) -> str:
        """The UTC day of a timestamp column, as ``YYYY-MM-DD`` text."""
        if self.dialect == "pg":
            return f"to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        return f"substr({col}, 1, 10)"

    def limit(self, m: str, side: str) -> str:
        """The judged numeric ``min`` (side ``lsl``) or ``max`` (``usl``) of a measurement."""
        if self.dialect == "pg":
            return f"CAST({m}.{side} AS DOUBLE PRECISION)"
        key = "$.min" if side == "lsl" else "$.max"
        return (f"(CASE WHEN json_valid({m}.limits) AND json_type({m}.limits, '{key}') "
                f"IN ('integer', 'real') THEN json_extract({m}.limits, '{key}') END)")

    def text(self, col: str) -> str:
        """A timestamp column as ISO text (for display and ordering in Python)."""
        return f"CAST({col} AS TEXT)" if self.dialect == "pg" else col

    # -- queries ---------------------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return _PARAM.sub(r"%(\1)s", sql.replace("%", "%%")) if self.dialect == "pg" else sql

    def rows(self, sql: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """All rows of an aggregating query (small by construction)."""
        return list(self.stream(sql, params))

    def stream(self, sql: str, params: dict[str, Any] | None = None,
               batch: int = 5000) -> Iterator[dict[str, Any]]:
        """Rows one batch at a time (a server-side cursor on PostgreSQL): memory stays bounded."""
        try:
            if self.dialect == "pg":
                self._cursors += 1
                with self.conn.cursor(name=f"eol_analytics_{self._cursors}") as cur:
                    cur.itersize = batch
                    cur.execute(self._sql(sql), params or {})
                    cols = None
                    for row in cur:
                        cols = cols or [d.name for d in cur.description]
                        yield dict(zip(cols, row))
            else:
                cur = self.conn.execute(sql, params or {})
                cols = [d[0] for d in cur.description]
                while chunk := cur.fetchmany(batch):
                    for row in chunk:
                        yield dict(zip(cols, row))
        except sqlite3.Error as exc:
            raise StoreError(self.name, f"cannot read: {exc}") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg"):
                raise StoreError(self.name, f"cannot read: {exc}") from exc
            raise

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(store: str, schema: str | None = None) -> Source:
    """A SQLite store file (read-only) or a ``postgres://`` URL (read-only transactions)."""
    if store.startswith(("postgres://", "postgresql://")):
        import psycopg

        options = "-c default_transaction_read_only=on"
        if schema:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", schema):
                raise StoreError(store, f"--schema {schema!r}: not a plain identifier")
            options += f" -c search_path={schema}"
        try:
            conn = psycopg.connect(store, options=options, connect_timeout=10,
                                   application_name="eol-analytics")
        except psycopg.Error as exc:
            raise StoreError(_redact(store), f"cannot connect: {exc}") from exc
        return Source(_redact(store), "pg", conn)
    path = Path(store)
    if not path.is_file():
        raise StoreError(path, "no such result store")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        conn.execute("BEGIN")  # one snapshot for every query of the analysis
    except sqlite3.Error as exc:
        raise StoreError(path, f"cannot open: {exc}") from exc
    return Source(str(path), "sqlite", conn)


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def add_population_arguments(p: Any) -> None:
    """The options every analysis shares."""
    # argparse takes "-7d" for an option: let it read as a value, as it does "-7" (the parser
    # has no option that looks like a negative number, so nothing else changes meaning).
    p._negative_number_matcher = re.compile(r"^-\d+d?$|^-\d*\.\d+$")
    p.add_argument("store", help="result store file, or a postgresql:// URL")
    p.add_argument("--schema", help="PostgreSQL schema holding the tables")
    p.add_argument("--since", metavar="DAY", help="runs started on or after DAY (YYYY-MM-DD, "
                   "today, yesterday, -7d; UTC)")
    p.add_argument("--until", metavar="DAY", help="runs started on or before DAY (inclusive)")
    p.add_argument("--station", dest="station_id", metavar="ID", help="only this station")
    p.add_argument("--fixture", dest="fixture_id", metavar="ID", help="only this fixture")
    p.add_argument("--product", metavar="PLAN_ID", help="only this product (plan id)")
    p.add_argument("--variant", help="only this variant")
    p.add_argument("--by", action="append", choices=GROUP_BY, default=[],
                   help="also group by station and/or fixture (repeatable)")
    for kind, what in (("development", "runs of stations in development mode"),
                       ("simulated", "runs on the simulator"),
                       ("faults", "runs with injected faults"),
                       ("interrupted", "interrupted runs (counted apart, no verdict)")):
        p.add_argument(f"--include-{kind}", action="store_true", help=f"also count {what}")


def population_from(args: Any, **extra: Any) -> Population:
    """The Population the options ask for; raises UsageProblem for bad dates."""
    get = lambda name: getattr(args, name, None)  # noqa: E731
    since = parse_day(get("since"), option="--since") if get("since") else None
    until = parse_day(get("until"), option="--until") if get("until") else None
    if since and until and since > until:
        raise UsageProblem(f"--since {since} is after --until {until}")
    return Population(since=since, until=until, station=get("station_id"),
                      fixture=get("fixture_id"), product=get("product"), variant=get("variant"),
                      by=tuple(get("by") or ()), development=bool(get("include_development")),
                      simulated=bool(get("include_simulated")), faults=bool(get("include_faults")),
                      interrupted=bool(get("include_interrupted")), **extra)
