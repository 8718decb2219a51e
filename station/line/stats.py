"""Line statistics, aggregated in the database: yield, first-pass yield, top failing steps, Cp/Cpk.

Every figure is per population (population.py): product (plan id), plan version and variant,
and on request station and fixture; production runs only unless asked otherwise.

- **Yield** per population and day (of the run's start, UTC): passed runs / runs with a verdict,
  retests included. Interrupted runs (``--include-interrupted``) are counted apart.
- **First-pass yield**: a serial passes first time only if its *first* run with a verdict (over
  the whole store within the population's run kinds, not only the selected days) passed; it is
  counted in the group and day of that first run. **Final yield**: serials whose *last* run
  passed / serials, in the group of their first run.
- **Top failing steps**: the last attempt of each step (what a retry decided) that failed or
  errored, per population and step path.
- **Capability** per population and measurement (step path + name, unit and judged limits):
  n, mean, σ (sample standard deviation, n − 1, computed in two passes in SQL for accuracy),
  Cp = (USL − LSL) / 6σ, Cpk = min(USL − mean, mean − LSL) / 3σ (the one side there is for
  one-sided limits). σ is the overall spread, so in AIAG terms these are Pp/Ppk.

Only aggregates cross from the database to Python (rows ∝ groups × days and groups ×
measurements, never ∝ runs), so memory does not grow with the number of runs; the HTML
trend plots fetch at most ``points`` values per measurement. ``station stats`` is
``stats_cmd.stats_command(args)``; outputs in stats_text.py, stats_html.py, stats_export.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .population import Population, Source


@dataclass
class YieldRow:
    group: tuple[str, ...]
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
    group: tuple[str, ...]
    path: str
    name: str
    unit: str
    lsl: float | None
    usl: float | None
    n: int = 0
    mean: float | None = None
    sigma: float | None = None
    fails: int = 0
    low: float | None = None
    high: float | None = None
    trend: list[tuple[str, float]] = field(default_factory=list)  # newest ≤ points, time order

    @property
    def cp(self) -> float | None:
        return cp_of(self.lsl, self.usl, self.sigma)

    @property
    def cpk(self) -> float | None:
        return cpk_of(self.lsl, self.usl, self.mean, self.sigma)


def cp_of(lsl: float | None, usl: float | None, sigma: float | None) -> float | None:
    if lsl is None or usl is None or not sigma:
        return None
    return (usl - lsl) / (6 * sigma)


def cpk_of(lsl: float | None, usl: float | None, mean: float | None,
           sigma: float | None) -> float | None:
    if not sigma or mean is None:
        return None
    sides = [d for d in ((usl - mean) if usl is not None else None,
                         (mean - lsl) if lsl is not None else None) if d is not None]
    return min(sides) / (3 * sigma) if sides else None


@dataclass
class Report:
    population: Population
    keys: list[str]
    yields: list[YieldRow]
    top_failing: list[tuple[tuple[str, ...], str, int, int, int]]  # group, path, failed, errored, runs
    capability: list[Capability]
    outside: int = 0  # runs of the selected days the population leaves out (shown when empty)


def _sum(cond: str) -> str:
    return f"SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)"


_PASSED = _sum("r.verdict = 'PASS'")


def yields(src: Source, pop: Population) -> list[YieldRow]:
    keys = pop.keys
    where, params = pop.where()
    out: dict[tuple, YieldRow] = {}
    sql = (f"SELECT {', '.join(pop.key_sql())}, {src.day('r.started_utc')} AS day, "
           f"{_sum('r.verdict IS NOT NULL')} AS runs, {_PASSED} AS passed, "
           f"{_sum('r.verdict IS NULL')} AS interrupted FROM runs r WHERE {where} "
           f"GROUP BY {', '.join(keys)}, day")
    for row in src.rows(sql, params):
        group = tuple(str(row[k]) for k in keys)
        out[(group, row["day"])] = YieldRow(group, row["day"], int(row["runs"]), int(row["passed"]),
                                            int(row["interrupted"]))
    # FPY: rank every run with a verdict of the population's run kinds (all days) per serial.
    kinds, kparams = pop.where(dates=False)
    dates, dparams = pop.date_where("f")
    sql = f"""
WITH pop AS (SELECT r.id, r.serial, r.started_utc, r.verdict, {', '.join(pop.key_sql())}
             FROM runs r WHERE {kinds} AND r.verdict IS NOT NULL AND r.serial IS NOT NULL),
ranked AS (SELECT pop.*,
    ROW_NUMBER() OVER (PARTITION BY serial ORDER BY started_utc, id) AS first_n,
    FIRST_VALUE(verdict) OVER (PARTITION BY serial ORDER BY started_utc DESC, id DESC) AS last_verdict
    FROM pop)
SELECT {', '.join('f.' + k for k in keys)}, {src.day('f.started_utc')} AS day, COUNT(*) AS serials,
       {_sum("f.verdict = 'PASS'")} AS first_pass, {_sum("f.last_verdict = 'PASS'")} AS final_pass
FROM ranked f
WHERE f.first_n = 1 AND {dates}
GROUP BY {', '.join('f.' + k for k in keys)}, day"""
    for row in src.rows(sql, {**kparams, **dparams}):
        group = tuple(str(row[k]) for k in keys)
        y = out.setdefault((group, row["day"]), YieldRow(group, row["day"]))
        y.serials, y.first_pass, y.final_pass = (int(row["serials"]), int(row["first_pass"]),
                                                 int(row["final_pass"]))
    return sorted(out.values(), key=lambda y: (y.group, y.day))


def top_failing(src: Source, pop: Population, top: int) -> list[tuple]:
    keys = pop.keys
    where, params = pop.where()
    # Every step has an attempt 1, so that counts the runs with the step; only the few failed
    # or errored rows pay for the "no later attempt" probe (CASE evaluates it only for them).
    later = ("NOT EXISTS (SELECT 1 FROM steps l WHERE l.run_id = s.run_id AND l.path = s.path "
             "AND l.attempt > s.attempt)")
    sql = (f"SELECT {', '.join(pop.key_sql())}, s.path AS path, "
           f"SUM(CASE WHEN s.outcome = 'failed' THEN CASE WHEN {later} THEN 1 ELSE 0 END ELSE 0 END) AS failed, "
           f"SUM(CASE WHEN s.outcome = 'error' THEN CASE WHEN {later} THEN 1 ELSE 0 END ELSE 0 END) AS errored, "
           f"SUM(CASE WHEN s.attempt = 1 THEN 1 ELSE 0 END) AS seen "
           f"FROM steps s JOIN runs r ON r.id = s.run_id WHERE {where} GROUP BY {', '.join(keys)}, s.path")
    rows = [(tuple(str(r[k]) for k in keys), r["path"], int(r["failed"]), int(r["errored"]),
             int(r["seen"])) for r in src.rows(sql, params) if r["failed"] or r["errored"]]
    rows.sort(key=lambda t: (-(t[2] + t[3]), t[0], t[1]))
    return rows[:top]


def _cap_from(keys: list[str], filters: str, src: Source, pop: Population) -> str:
    return (f"SELECT {', '.join(pop.key_sql())}, m.path AS path, m.name AS name, "
            f"COALESCE(m.unit, '') AS unit, {src.limit('m', 'lsl')} AS lsl, "
            f"{src.limit('m', 'usl')} AS usl, m.value_num AS x, m.verdict AS verdict, "
            f"{src.text('m.utc')} AS utc, m.run_id AS run_id "
            f"FROM measurements m JOIN runs r ON r.id = m.run_id "
            f"WHERE m.value_num IS NOT NULL AND {filters}")


def capability(src: Source, pop: Population, *, points: int = 0) -> list[Capability]:
    keys = pop.keys
    where, params = pop.where()
    part = ", ".join(keys + ["path", "name", "unit", "lsl", "usl"])
    sql = f"""
WITH v AS ({_cap_from(keys, where, src, pop)}),
w AS (SELECT v.*, AVG(x) OVER (PARTITION BY {part}) AS mu FROM v)
SELECT {part}, COUNT(*) AS n, AVG(x) AS mean, SUM((x - mu) * (x - mu)) AS ss,
       {_sum("verdict = 'fail'")} AS fails, MIN(x) AS low, MAX(x) AS high
FROM w GROUP BY {part}"""
    caps: dict[tuple, Capability] = {}
    for r in src.rows(sql, params):
        n = int(r["n"])
        lsl = _num(r["lsl"])
        usl = _num(r["usl"])
        key = (tuple(str(r[k]) for k in keys), r["path"], r["name"], r["unit"], lsl, usl)
        caps[key] = Capability(*key, n=n, mean=float(r["mean"]),
                               sigma=math.sqrt(max(float(r["ss"]), 0.0) / (n - 1)) if n >= 2 else None,
                               fails=int(r["fails"]), low=float(r["low"]), high=float(r["high"]))
    if points > 0 and caps:
        (_trend_pg if src.dialect == "pg" else _trend_window)(src, pop, caps, points, where, params)
    return sorted(caps.values(), key=lambda c: (c.group, c.path, c.name, c.unit,
                                                 c.lsl if c.lsl is not None else -math.inf))


def _trend_window(src: Source, pop: Population, caps: dict, points: int, where: str,
                  params: dict[str, Any]) -> None:
    """The newest ``points`` values of every measurement, in one windowed query (SQLite)."""
    keys = pop.keys
    part = ", ".join(keys + ["path", "name", "unit", "lsl", "usl"])
    sql = f"""
WITH v AS ({_cap_from(keys, where, src, pop)}),
w AS (SELECT v.*, ROW_NUMBER() OVER (PARTITION BY {part} ORDER BY utc DESC, run_id DESC) AS rn FROM v)
SELECT {part}, utc, x FROM w WHERE rn <= :p_points ORDER BY {part}, utc, run_id"""
    for r in src.stream(sql, {**params, "p_points": points}):
        key = (tuple(str(r[k]) for k in keys), r["path"], r["name"], r["unit"],
               _num(r["lsl"]), _num(r["usl"]))
        if key in caps:
            caps[key].trend.append((str(r["utc"] or ""), float(r["x"])))


def _trend_pg(src: Source, pop: Population, caps: dict, points: int, where: str,
              params: dict[str, Any]) -> None:
    """The same from the newest ``2 × points`` runs of each population (by the runs' start
    index), then only their measurements (by primary key, within their months' partitions):
    bounded work however many runs the store holds. A measurement missing from some runs
    shows the values it has among those."""
    exprs = {k: sql.rsplit(" AS ", 1)[0] for k, sql in zip(pop.keys, pop.key_sql())}
    groups: dict[tuple[str, ...], list[Capability]] = {}
    for cap in caps.values():
        groups.setdefault(cap.group, []).append(cap)
    for group, members in groups.items():
        args = {**params, "p_window": 2 * points}
        args.update({f"t_g{i}": v for i, v in enumerate(group)})
        conds = " AND ".join(f"{exprs[k]} = :t_g{i}" for i, k in enumerate(pop.keys))
        runs = src.rows(f"SELECT r.id AS id, r.started_utc AS started FROM runs r WHERE {where} "
                        f"AND {conds} ORDER BY r.started_utc DESC, r.id DESC LIMIT :p_window", args)
        if not runs:
            continue
        ids = {f"t_id{i}": r["id"] for i, r in enumerate(runs)}
        wanted = {(c.path, c.name, c.unit, c.lsl, c.usl): c for c in members}
        rows = src.rows(
            f"SELECT m.path AS path, m.name AS name, COALESCE(m.unit, '') AS unit, "
            f"{src.limit('m', 'lsl')} AS lsl, {src.limit('m', 'usl')} AS usl, "
            f"{src.text('m.utc')} AS utc, m.value_num AS x FROM measurements m "
            f"WHERE m.run_id IN ({', '.join(':' + k for k in ids)}) AND m.run_started >= :t_oldest "
            f"AND m.value_num IS NOT NULL ORDER BY m.utc, m.run_id",
            {**ids, "t_oldest": min(r["started"] for r in runs)})
        for r in rows:
            cap = wanted.get((r["path"], r["name"], r["unit"], _num(r["lsl"]), _num(r["usl"])))
            if cap is not None:
                cap.trend.append((str(r["utc"] or ""), float(r["x"])))
        for cap in members:
            del cap.trend[:-points]


def _num(value: Any) -> float | None:
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def compute(src: Source, pop: Population | None = None, *, top: int = 10,
            points: int = 0) -> Report:
    """Every statistic of ``pop`` (default: production runs of every day) in ``src``."""
    pop = pop or Population()
    report = Report(pop, pop.keys, yields(src, pop), top_failing(src, pop, top),
                    capability(src, pop, points=points))
    if not report.yields:  # say why it is empty rather than print empty tables
        dates, params = pop.date_where()
        report.outside = int(src.rows(f"SELECT COUNT(*) AS n FROM runs r WHERE {dates}", params)[0]["n"])
    return report

