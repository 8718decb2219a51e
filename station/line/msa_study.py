"""``station msa``: gauge R&R studies (msa.py) from repeated runs of the same packs in a store.

Parts are pack serials (``--serial``, or by default every serial of the selected runs measured
at least twice by at least two appraisers); appraisers are fixtures (default), operators or
stations (``--appraiser``); each run of a part by an appraiser is one trial (in time order;
the last attempt of a retried measurement). One study per measurement (step path + name) and
population (product, plan version, variant). Only the study's runs are read (streamed).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from .msa import DesignProblem, GaugeStudy, anova_grr
from .population import Population, Source
from .stats_text import fmt, table

_APPRAISER = {"fixture": "r.fixture_id", "operator": "r.operator", "station": "r.station_id"}
COMPONENTS = ("repeatability", "reproducibility", "appraiser", "interaction", "grr", "part", "total")


@dataclass
class MeasurementStudy:
    group: tuple[str, ...]
    path: str
    name: str
    unit: str
    study: GaugeStudy | None
    problem: str | None = None


def collect(src: Source, pop: Population, appraiser: str = "fixture",
            measurements: tuple[str, ...] = ()) -> dict[tuple, dict[tuple, list[float]]]:
    """``{(group, path, name, unit, lsl, usl): {(serial, appraiser): [trial values]}}``."""
    col = _APPRAISER[appraiser]
    keys = [k for k in pop.keys if k != appraiser]
    key_sql = [s for k, s in zip(pop.keys, pop.key_sql()) if k != appraiser]
    where, params = pop.where()
    if pop.serials is None:  # every serial measured at least twice by at least two appraisers
        where += (f" AND r.serial IN (SELECT q.serial FROM runs q WHERE {pop.where('q')[0]} "
                  f"GROUP BY q.serial HAVING COUNT(*) >= 4 AND COUNT(DISTINCT {col.replace('r.', 'q.')}) >= 2)")
    sql = (f"SELECT {', '.join(key_sql)}, r.serial AS serial, COALESCE({col}, '?') AS appraiser, "
           f"m.path AS path, m.name AS name, COALESCE(m.unit, '') AS unit, "
           f"{src.limit('m', 'lsl')} AS lsl, {src.limit('m', 'usl')} AS usl, m.value_num AS x "
           f"FROM measurements m JOIN runs r ON r.id = m.run_id "
           f"WHERE m.value_num IS NOT NULL AND {where} AND m.attempt = (SELECT MAX(l.attempt) "
           f"FROM measurements l WHERE l.run_id = m.run_id AND l.path = m.path AND l.name = m.name) "
           f"ORDER BY r.started_utc, r.id")
    wanted = set(measurements)
    data: dict[tuple, dict[tuple, list[float]]] = defaultdict(lambda: defaultdict(list))
    limits: dict[tuple, tuple] = {}
    for row in src.stream(sql, params):
        plain = (row["path"], row["name"])
        if wanted and f"{plain[0]}.{plain[1]}" not in wanted and \
                f"{plain[0].rsplit('/', 1)[-1]}.{plain[1]}" not in wanted:
            continue
        key = (tuple(str(row[k]) for k in keys), row["path"], row["name"], row["unit"])
        limits.setdefault(key, (row["lsl"], row["usl"]))
        data[key][(row["serial"], row["appraiser"])].append(float(row["x"]))
    return {k + limits[k]: v for k, v in data.items()}


def studies(src: Source, pop: Population, *, appraiser: str = "fixture",
            measurements: tuple[str, ...] = (), alpha: float = 0.05) -> list[MeasurementStudy]:
    out = []
    for (group, path, name, unit, lsl, usl), cells in sorted(collect(src, pop, appraiser, measurements).items(),
                                                             key=lambda kv: kv[0][:4]):
        tol = float(usl) - float(lsl) if lsl is not None and usl is not None else None
        try:
            out.append(MeasurementStudy(group, path, name, unit, anova_grr(cells, alpha=alpha, tolerance=tol)))
        except DesignProblem as exc:
            out.append(MeasurementStudy(group, path, name, unit, None, str(exc)))
    return out


def as_json(result: list[MeasurementStudy], keys: list[str]) -> list[dict[str, Any]]:
    rows = []
    for m in result:
        row: dict[str, Any] = {**dict(zip(keys, m.group)), "step": m.path, "measurement": m.name,
                               "unit": m.unit}
        s = m.study
        if s is None:
            row.update(verdict="not computed", problem=m.problem)
        else:
            row.update(parts=s.parts, appraisers=s.appraisers, trials=s.trials, pooled=s.pooled,
                       anova=[vars(t) for t in s.table],
                       components={c: {"variance": s.var[c], "sd": s.sd(c),
                                       "pct_tv": s.pct_tv(c), "pct_contribution": s.pct_contribution(c)}
                                   for c in COMPONENTS},
                       pct_grr=s.pct_grr, pct_tolerance=s.pct_tolerance, ndc=s.ndc,
                       verdict=s.verdict, notes=s.notes)
        rows.append(row)
    return rows


def format_text(result: list[MeasurementStudy], keys: list[str], pop: Population,
                appraiser: str) -> str:
    lines = [f"Gauge R&R (AIAG, ANOVA method); appraisers: {appraiser}s", pop.describe(), "",
             table(keys + ["step", "measurement", "parts×appr×trials", "EV", "AV", "GRR", "PV",
                           "%GRR", "%tol", "ndc", "verdict"],
                   [[*m.group, m.path, m.name,
                     f"{m.study.parts}×{m.study.appraisers}×{m.study.trials}" if m.study else "—",
                     *( [fmt(m.study.sd(c)) for c in ("repeatability", "reproducibility", "grr", "part")]
                        if m.study else ["—"] * 4),
                     fmt(m.study.pct_grr, 3) if m.study else "—",
                     fmt(m.study.pct_tolerance, 3) if m.study else "—",
                     str(m.study.ndc) if m.study and m.study.ndc is not None else "—",
                     m.study.verdict if m.study else "not computed"] for m in result])]
    notes = [f"  {m.path} {m.name}: {n}" for m in result for n in (m.study.notes if m.study else [m.problem])]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines) + "\n"
