"""``station rejudge``: stored measurements judged against new limits, without re-testing.

For the runs of a population (population.py: production runs by default) that ended PASS or
FAIL, the last attempt of every recorded measurement that the new limits cover is judged again
with the plan language's own judge (``station.plan.judge``); measurements the new limits do
not cover keep their recorded verdict. A run's verdict *after*:

- a PASS run becomes FAIL when any of its measurements fails the new limits;
- a FAIL run becomes PASS only when no measurement fails any more **and** every step that
  failed did so because of a failing measurement (a step that failed or errored for any other
  reason, or a run that ended ERROR/ABORTED, is never turned into a PASS). A run that stopped
  at its failure did not measure the steps after it: such a PASS means "passes as far as it
  was measured", which the report says.

Reported: the runs and packs (serials whose last selected run changes) whose verdict changes
and the measurements that decided it, yield before and after per population, and per
measurement the fails and Cpk against the recorded and the new limits. Memory: one run's rows
at a time plus one accumulator per measurement (rows are streamed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from station.plan.judge import judge
from station.plan.values import ValueProblem

from .population import Population, Source
from .rejudge_limits import NewLimits
from .stats import cpk_of


@dataclass
class MeasureDelta:
    """One measurement (per population) under the recorded and the new limits."""

    group: tuple[str, ...]
    path: str
    name: str
    unit: str
    old_lsl: float | None = None
    old_usl: float | None = None
    new_lsl: float | None = None
    new_usl: float | None = None
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    fails_before: int = 0
    fails_after: int = 0
    not_judged: int = 0
    why_not: str = ""

    def add(self, value: float) -> None:  # Welford: one pass, numerically stable
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)

    @property
    def sigma(self) -> float | None:
        return math.sqrt(self.m2 / (self.n - 1)) if self.n >= 2 else None

    @property
    def cpk_before(self) -> float | None:
        return cpk_of(self.old_lsl, self.old_usl, self.mean if self.n else None, self.sigma)

    @property
    def cpk_after(self) -> float | None:
        return cpk_of(self.new_lsl, self.new_usl, self.mean if self.n else None, self.sigma)


@dataclass
class RunChange:
    run_id: str
    serial: str
    group: tuple[str, ...]
    station: str
    started: str
    before: str
    after: str
    last_of_pack: bool
    because: list[str]  # "path name: text" of the measurements whose verdict changed


@dataclass
class GroupYield:
    runs: int = 0
    passed_before: int = 0
    to_fail: int = 0
    to_pass: int = 0

    @property
    def passed_after(self) -> int:
        return self.passed_before - self.to_fail + self.to_pass

    def pct(self, passed: int) -> float | None:
        return 100.0 * passed / self.runs if self.runs else None


@dataclass
class RejudgeReport:
    population: Population
    keys: list[str]
    source: str
    yields: dict[tuple[str, ...], GroupYield] = field(default_factory=dict)
    measures: list[MeasureDelta] = field(default_factory=list)
    changes: list[RunChange] = field(default_factory=list)
    rejudged_runs: int = 0

    @property
    def packs_changed(self) -> list[RunChange]:
        return [c for c in self.changes if c.last_of_pack]


def _value(row: dict[str, Any], dialect: str) -> Any:
    if row["value_num"] is not None:
        return float(row["value_num"])
    raw = row["value_json"]
    if dialect == "sqlite" and isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def _runs_of(src: Source, pop: Population, limits: NewLimits) -> tuple[str, dict[str, Any]]:
    where, params = pop.where()
    if limits.plan_id:
        where += " AND r.plan_id = :p_new_plan"
        params["p_new_plan"] = limits.plan_id
    return where, params


def rejudge(src: Source, pop: Population, limits: NewLimits) -> RejudgeReport:
    """Re-judge the population's stored measurements against ``limits``."""
    keys = pop.keys
    report = RejudgeReport(pop, keys, limits.source)
    where, params = _runs_of(src, pop, limits)
    for row in src.rows(f"SELECT {', '.join(pop.key_sql())}, COUNT(*) AS runs, "
                        f"SUM(CASE WHEN r.verdict = 'PASS' THEN 1 ELSE 0 END) AS passed "
                        f"FROM runs r WHERE {where} AND r.verdict IS NOT NULL "
                        f"GROUP BY {', '.join(keys)}", params):
        report.yields[tuple(str(row[k]) for k in keys)] = GroupYield(int(row["runs"]),
                                                                     int(row["passed"]))
    sql = f"""
WITH pr AS (SELECT r.id, r.serial, r.verdict, r.variant, r.station_id, {src.text('r.started_utc')} AS started,
                   {', '.join(pop.key_sql())},
                   ROW_NUMBER() OVER (PARTITION BY r.serial ORDER BY r.started_utc DESC, r.id DESC) AS last_n
            FROM runs r WHERE {where} AND r.verdict IN ('PASS', 'FAIL')),
bad AS (SELECT s.run_id, COUNT(*) AS n FROM steps s JOIN pr ON pr.id = s.run_id
        WHERE s.outcome IN ('failed', 'error')
          AND s.attempt = (SELECT MAX(l.attempt) FROM steps l WHERE l.run_id = s.run_id AND l.path = s.path)
          AND NOT EXISTS (SELECT 1 FROM measurements f WHERE f.run_id = s.run_id AND f.path = s.path
                          AND f.attempt = s.attempt AND f.verdict = 'fail')
        GROUP BY s.run_id)
SELECT pr.*, COALESCE(bad.n, 0) AS unexplained, m.path AS path, m.attempt AS attempt, m.name AS name,
       m.value_num AS value_num, m.value_json AS value_json, COALESCE(m.unit, '') AS unit,
       m.verdict AS m_verdict, {src.limit('m', 'lsl')} AS lsl, {src.limit('m', 'usl')} AS usl
FROM pr JOIN measurements m ON m.run_id = pr.id LEFT JOIN bad ON bad.run_id = pr.id
ORDER BY pr.id, m.path, m.name, m.attempt"""
    measures: dict[tuple, MeasureDelta] = {}
    for run_rows in _by_run(src.stream(sql, params)):
        report.rejudged_runs += 1
        _one_run(src, run_rows, keys, limits, measures, report)
    report.measures = sorted(measures.values(), key=lambda d: (d.group, d.path, d.name))
    report.changes.sort(key=lambda c: (c.started, c.run_id))
    return report


def _by_run(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        if batch and row["id"] != batch[0]["id"]:
            yield batch
            batch = []
        batch.append(row)
    if batch:
        yield batch


def _one_run(src: Source, rows: list[dict[str, Any]], keys: list[str], limits: NewLimits,
             measures: dict[tuple, MeasureDelta], report: RejudgeReport) -> None:
    head = rows[0]
    group = tuple(str(head[k]) for k in keys)
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:  # ordered by attempt: the last attempt is what a retry decided
        last[(row["path"], row["name"])] = row
    fail_after, because = False, []
    for (path, name), row in last.items():
        before = row["m_verdict"] or "pass"
        after = before
        found = limits.lookup(head["variant"], path, name)
        delta = None
        if found is not None:
            key = (group, path, name, row["unit"])
            delta = measures.get(key)
            if delta is None:
                delta = measures[key] = MeasureDelta(group, path, name, row["unit"],
                                                     _f(row["lsl"]), _f(row["usl"]))
            limit, names = found
            value = _value(row, src.dialect)
            try:
                after, judged, text = judge(value, row["unit"], limit, names)
            except ValueProblem as exc:
                delta.not_judged += 1
                delta.why_not = str(exc)
            else:
                if delta.new_lsl is None and delta.new_usl is None:
                    delta.new_lsl, delta.new_usl = _f(judged.get("min")), _f(judged.get("max"))
                if isinstance(value, float) and math.isfinite(value):
                    delta.add(value)
                delta.fails_before += before == "fail"
                delta.fails_after += after == "fail"
                if (before == "fail") != (after == "fail"):
                    because.append(f"{path} {name}: {text}")
        fail_after = fail_after or after == "fail"
    old = head["verdict"]
    if old == "PASS":
        new = "FAIL" if fail_after else "PASS"
    else:
        new = "PASS" if not fail_after and int(head["unexplained"]) == 0 else "FAIL"
    if new != old:
        y = report.yields.setdefault(group, GroupYield())
        if new == "FAIL":
            y.to_fail += 1
        else:
            y.to_pass += 1
        report.changes.append(RunChange(head["id"], head["serial"] or "", group,
                                        head["station_id"] or "", str(head["started"] or ""),
                                        old, new, int(head["last_n"]) == 1, because))


def _f(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None

