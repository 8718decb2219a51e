"""Line statistics over a result store: yield, first-pass yield, top failing steps, Cp/Cpk.

- **Yield** per station / product / day (of the run's start, UTC): passed runs / finished runs,
  retests included. Interrupted runs (no verdict) are counted apart, never as pass or fail.
- **First-pass yield**: a serial passes first time only if its *first* finished run (over the
  whole store, not just the day) passed; it is counted in the group of that first run. So a
  pack that failed, was reworked and passed on retest lowers FPY but not final yield.
  **Final yield**: serials whose *last* run passed / serials, in the group of their first run.
- **Top failing steps**: the last attempt of each step (what a retry decided) that failed or
  errored, counted per step path.
- **Capability** per measurement (step path + name, and its unit and limits, since a variant
  with other limits is another population): n, mean, σ (sample standard deviation, n − 1, of
  every numeric value), Cp = (USL − LSL) / 6σ, Cpk = min(USL − mean, mean − LSL) / 3σ (the one
  side there is for one-sided limits). σ is the overall spread, so in AIAG terms these are
  Pp/Ppk; EOL practice calls them Cp/Cpk. Limits are the judged ``min``/``max``.

Sources: a SQLite store file, or a PostgreSQL URL (``postgresql://...``, ``--schema``).
``station stats`` is ``stats_command(args)``; text tables in stats_text.py, the HTML export
with trend plots in stats_html.py.
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import statistics
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from station.results.store import StoreError

from .stats_text import format_text

_RUNS = ("SELECT id, serial, station_id, plan_id, variant, started_utc, verdict, status "
         "FROM runs")
_STEPS = "SELECT run_id, path, attempt, outcome FROM steps"
_MEAS = ("SELECT run_id, path, name, value_num, unit, limits, verdict, utc FROM measurements "
         "WHERE value_num IS NOT NULL")


@dataclass
class Dataset:
    """The rows statistics need, from any store."""

    runs: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    measurements: list[dict[str, Any]]

    def filtered(self, *, station: str | None = None, since: str | None = None,
                 until: str | None = None) -> "Dataset":
        """Only runs of ``station`` started on days ``since``..``until`` (ISO dates, inclusive)."""
        keep = {r["id"] for r in self.runs
                if (station is None or r["station_id"] == station)
                and (since is None or (r["started_utc"] or "")[:10] >= since)
                and (until is None or (r["started_utc"] or "")[:10] <= until)}
        return Dataset([r for r in self.runs if r["id"] in keep],
                       [s for s in self.steps if s["run_id"] in keep],
                       [m for m in self.measurements if m["run_id"] in keep])


def load_sqlite(path: str | Path) -> Dataset:
    """Read a station's SQLite store (read-only, one snapshot)."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(path, "no such result store")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(path, f"cannot open: {exc}") from exc
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("BEGIN")
        return Dataset(*([dict(r) for r in conn.execute(sql)] for sql in (_RUNS, _STEPS, _MEAS)))
    except sqlite3.Error as exc:
        raise StoreError(path, f"cannot read: {exc}") from exc
    finally:
        conn.close()


def load_pg(url: str, schema: str | None = None) -> Dataset:
    """Read the line's PostgreSQL store."""
    from .pg_store import PgResultStore

    with PgResultStore(url, schema=schema, application_name="eol-stats") as store:
        return Dataset(*(store._query(sql) for sql in (_RUNS, _STEPS, _MEAS)))


def load(source: str, schema: str | None = None) -> Dataset:
    """A store file, or a ``postgres://`` / ``postgresql://`` URL."""
    if source.startswith(("postgres://", "postgresql://")):
        return load_pg(source, schema)
    return load_sqlite(source)


# -- computing ----------------------------------------------------------------------------------
@dataclass
class YieldRow:
    station: str
    product: str
    day: str
    runs: int = 0
    passed: int = 0
    interrupted: int = 0
    serials: int = 0
    first_pass: int = 0
    final_pass: int = 0

    @property
    def yield_pct(self) -> float | None:
        return 100.0 * self.passed / self.runs if self.runs else None

    @property
    def fpy_pct(self) -> float | None:
        return 100.0 * self.first_pass / self.serials if self.serials else None

    @property
    def final_pct(self) -> float | None:
        return 100.0 * self.final_pass / self.serials if self.serials else None


@dataclass
class Capability:
    path: str
    name: str
    unit: str
    lsl: float | None
    usl: float | None
    values: list[tuple[str, float]] = field(default_factory=list)  # (utc, value) in time order
    fails: int = 0

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(v for _, v in self.values) if self.values else None

    @property
    def sigma(self) -> float | None:
        return statistics.stdev(v for _, v in self.values) if self.n >= 2 else None

    @property
    def cp(self) -> float | None:
        s = self.sigma
        if self.lsl is None or self.usl is None or not s:
            return None
        return (self.usl - self.lsl) / (6 * s)

    @property
    def cpk(self) -> float | None:
        s, mean = self.sigma, self.mean
        if not s or mean is None:
            return None
        sides = [(self.usl - mean) if self.usl is not None else None,
                 (mean - self.lsl) if self.lsl is not None else None]
        sides = [d for d in sides if d is not None]
        return min(sides) / (3 * s) if sides else None


@dataclass
class Report:
    yields: list[YieldRow]
    top_failing: list[tuple[str, int, int, int]]  # path, failed, errored, runs with the step
    capability: list[Capability]


def product_of(run: dict[str, Any]) -> str:
    """Product key of a run: plan id, and variant when there is one."""
    plan = run["plan_id"] or "?"
    return f"{plan}/{run['variant']}" if run.get("variant") else plan


def _limit(limits: dict[str, Any], key: str) -> float | None:
    value = limits.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) else None


def _in_order(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(runs, key=lambda r: (r["started_utc"] or "", r["id"]))


def compute(data: Dataset, *, top: int = 10, history: Dataset | None = None) -> Report:
    """Statistics of ``data``; ``history`` (default ``data``) is the unfiltered store, so a
    retest inside a date filter is not mistaken for a serial's first run."""
    runs = _in_order(data.runs)
    shown = {r["id"] for r in runs}
    groups: dict[tuple[str, str, str], YieldRow] = {}

    def group(r: dict[str, Any]) -> YieldRow:
        key = (r["station_id"] or "?", product_of(r), (r["started_utc"] or "?")[:10])
        return groups.setdefault(key, YieldRow(*key))

    for r in runs:
        g = group(r)
        if r["verdict"] is None:
            g.interrupted += 1
            continue
        g.runs += 1
        g.passed += r["verdict"] == "PASS"
    by_serial: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in _in_order((history or data).runs):
        if r["verdict"] is not None:
            by_serial[r["serial"]].append(r)
    for serial_runs in by_serial.values():
        if serial_runs[0]["id"] not in shown:  # first tested outside the selection
            continue
        g = group(serial_runs[0])
        g.serials += 1
        g.first_pass += serial_runs[0]["verdict"] == "PASS"
        g.final_pass += serial_runs[-1]["verdict"] == "PASS"

    final: dict[tuple[str, str], dict[str, Any]] = {}
    for s in data.steps:
        key = (s["run_id"], s["path"])
        if key not in final or s["attempt"] > final[key]["attempt"]:
            final[key] = s
    failed, errored, seen = Counter(), Counter(), Counter()
    for (_, path), s in final.items():
        seen[path] += 1
        failed[path] += s["outcome"] == "failed"
        errored[path] += s["outcome"] == "error"
    worst = sorted((p for p in seen if failed[p] + errored[p]),
                   key=lambda p: (-(failed[p] + errored[p]), p))[:top]

    caps: dict[tuple, Capability] = {}
    for m in sorted(data.measurements, key=lambda m: (m["utc"] or "", m["run_id"])):
        limits = json.loads(m["limits"]) if m["limits"] else {}
        limits = limits if isinstance(limits, dict) else {}
        key = (m["path"], m["name"], m["unit"] or "", _limit(limits, "min"), _limit(limits, "max"))
        cap = caps.setdefault(key, Capability(*key))
        cap.values.append((m["utc"] or "", float(m["value_num"])))
        cap.fails += m["verdict"] == "fail"
    return Report(sorted(groups.values(), key=lambda g: (g.station, g.product, g.day)),
                  [(p, failed[p], errored[p], seen[p]) for p in worst],
                  sorted(caps.values(), key=lambda c: (c.path, c.name, c.unit)))


# -- command ------------------------------------------------------------------------------------
from station.line.stats_args import add_arguments  # noqa: E402,F401  (kept importable from here)


def stats_command(args: argparse.Namespace, out: TextIO | None = None,
                  err: TextIO | None = None) -> int:
    """``station stats``: 0 on success, 2 when the store cannot be read."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        everything = load(args.store, getattr(args, "schema", None))
    except StoreError as exc:
        print(f"station stats: {exc}", file=err)
        return 2
    data = everything.filtered(station=getattr(args, "station_id", None),
                               since=getattr(args, "since", None),
                               until=getattr(args, "until", None))
    report = compute(data, top=getattr(args, "top", 10), history=everything)
    out.write(format_text(report))
    if getattr(args, "html", None):
        from .stats_html import write_html

        try:
            write_html(report, args.html, source=args.store)
        except OSError as exc:
            print(f"station stats: cannot write {args.html}: {exc}", file=err)
            return 2
    return 0
