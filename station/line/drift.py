"""Golden-pack drift: runs of reference packs on individuals / moving-range control charts.

A reference (golden) pack is tested regularly on every station and fixture; its true values do
not change, so a drift of its results is the station's or fixture's drift (a contact resistance
creeping up, a meter out of calibration) — seen before it wrongly passes or fails product.

Per reference serial, station, fixture and measurement (step path + name), in time order:

- **Limits** from a baseline, the first ``baseline`` points (default 20, or every point when
  fewer): centre = their mean, MR̄ = mean moving range, σ̂ = MR̄ / d2 (d2 = 1.128 for n = 2);
  individuals chart centre ± 3σ̂, moving-range chart UCL = D4·MR̄ (D4 = 3.267).
- **Western Electric rules** on every point (z = (x − centre) / σ̂): 1) one point beyond 3σ;
  2) two of three consecutive beyond 2σ on one side; 3) four of five consecutive beyond 1σ on
  one side; 4) eight consecutive on one side of the centre. A point beyond the MR UCL is
  flagged as well (a jump).
- A chart with any violation among its ``recent`` newest points (default 10) is **drifting**;
  its station and fixture are flagged.
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from .population import Population, Source
from .stats_text import fmt, table

D2, D4 = 1.128, 3.267


@dataclass
class Chart:
    serial: str
    station: str
    fixture: str
    path: str
    name: str
    unit: str
    points: list[tuple[str, str, float]] = field(default_factory=list)  # (utc, run id, value)
    centre: float | None = None
    sigma: float | None = None
    mr_bar: float | None = None
    baseline_n: int = 0
    violations: dict[int, list[str]] = field(default_factory=dict)  # point index -> rules
    recent: int = 10

    @property
    def ucl(self) -> float | None:
        return None if self.centre is None or self.sigma is None else self.centre + 3 * self.sigma

    @property
    def lcl(self) -> float | None:
        return None if self.centre is None or self.sigma is None else self.centre - 3 * self.sigma

    @property
    def mr_ucl(self) -> float | None:
        return None if self.mr_bar is None else D4 * self.mr_bar

    @property
    def drifting(self) -> bool:
        first = max(0, len(self.points) - self.recent)
        return any(i >= first for i in self.violations)


def western_electric(z: list[float]) -> dict[int, list[str]]:
    """Indices of the points that complete a rule violation, with the rules (1..4) broken."""
    out: dict[int, list[str]] = defaultdict(list)
    for i, zi in enumerate(z):
        if abs(zi) > 3:
            out[i].append("1: beyond 3σ")
        for side in (1, -1):
            last3 = z[max(0, i - 2):i + 1]
            if len(last3) == 3 and side * zi > 2 and sum(side * v > 2 for v in last3) >= 2:
                out[i].append("2: 2 of 3 beyond 2σ")
            last5 = z[max(0, i - 4):i + 1]
            if len(last5) == 5 and side * zi > 1 and sum(side * v > 1 for v in last5) >= 4:
                out[i].append("3: 4 of 5 beyond 1σ")
            last8 = z[max(0, i - 7):i + 1]
            if len(last8) == 8 and all(side * v > 0 for v in last8):
                out[i].append("4: 8 on one side")
    return dict(out)


def analyse(chart: Chart, baseline: int = 20) -> Chart:
    """Limits from the baseline and rule violations of every point."""
    values = [v for _, _, v in chart.points]
    base = values[:baseline] if len(values) > baseline else values
    chart.baseline_n = len(base)
    if len(base) < 2:
        return chart
    chart.centre = statistics.fmean(base)
    mrs = [abs(b - a) for a, b in itertools.pairwise(base)]
    chart.mr_bar = statistics.fmean(mrs)
    chart.sigma = chart.mr_bar / D2
    if chart.sigma <= 0:
        return chart
    z = [(v - chart.centre) / chart.sigma for v in values]
    chart.violations = western_electric(z)
    for i in range(1, len(values)):
        if abs(values[i] - values[i - 1]) > chart.mr_ucl:
            chart.violations.setdefault(i, []).append("MR: jump beyond the moving-range limit")
    return chart


def charts(src: Source, pop: Population, *, baseline: int = 20, recent: int = 10) -> list[Chart]:
    """Every chart of the reference serials of ``pop`` (streamed rows, one list per chart)."""
    where, params = pop.where()
    sql = (f"SELECT r.serial AS serial, COALESCE(r.station_id, '?') AS station, "
           f"COALESCE(r.fixture_id, '?') AS fixture, m.path AS path, m.name AS name, "
           f"COALESCE(m.unit, '') AS unit, {src.text('m.utc')} AS utc, r.id AS run_id, "
           f"m.value_num AS x FROM measurements m JOIN runs r ON r.id = m.run_id "
           f"WHERE m.value_num IS NOT NULL AND {where} AND m.attempt = (SELECT MAX(l.attempt) "
           f"FROM measurements l WHERE l.run_id = m.run_id AND l.path = m.path AND l.name = m.name) "
           f"ORDER BY r.started_utc, r.id")
    found: dict[tuple, Chart] = {}
    for row in src.stream(sql, params):
        key = (row["serial"], row["station"], row["fixture"], row["path"], row["name"], row["unit"])
        chart = found.setdefault(key, Chart(*key, recent=recent))
        chart.points.append((str(row["utc"] or ""), row["run_id"], float(row["x"])))
    return [analyse(c, baseline) for _, c in sorted(found.items())]


def flagged(result: list[Chart]) -> list[tuple[str, str]]:
    """(station, fixture) pairs with a drifting reference chart."""
    return sorted({(c.station, c.fixture) for c in result if c.drifting})


def drifting_measurements(result: list[Chart]) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(station, fixture) -> the (step path, measurement) of its drifting charts, sorted."""
    out: dict[tuple[str, str], set[tuple[str, str]]] = defaultdict(set)
    for c in result:
        if c.drifting:
            out[(c.station, c.fixture)].add((c.path, c.name))
    return {key: sorted(found) for key, found in sorted(out.items())}


def as_json(result: list[Chart]) -> dict[str, Any]:
    return {"flagged": [{"station": s, "fixture": f} for s, f in flagged(result)],
            "charts": [{"serial": c.serial, "station": c.station, "fixture": c.fixture,
                        "step": c.path, "measurement": c.name, "unit": c.unit, "n": len(c.points),
                        "baseline_n": c.baseline_n, "centre": c.centre, "sigma": c.sigma,
                        "ucl": c.ucl, "lcl": c.lcl, "mr_ucl": c.mr_ucl, "drifting": c.drifting,
                        "violations": [{"run_id": c.points[i][1], "utc": c.points[i][0],
                                        "value": c.points[i][2], "rules": rules}
                                       for i, rules in sorted(c.violations.items())]}
                       for c in result]}


def format_text(result: list[Chart]) -> str:
    flags = flagged(result)
    lines = ["Reference (golden) packs: individuals / moving-range charts, Western Electric rules",
             ("DRIFTING: " + ", ".join(f"{s} fixture {f}" for s, f in flags)) if flags
             else "no station or fixture drifting", "",
             table(["serial", "station", "fixture", "step", "measurement", "n", "centre", "σ̂",
                    "LCL", "UCL", "violations", "state"],
                   [[c.serial, c.station, c.fixture, c.path, c.name, str(len(c.points)),
                     fmt(c.centre, 6), fmt(c.sigma), fmt(c.lcl, 6), fmt(c.ucl, 6),
                     str(len(c.violations)), "DRIFTING" if c.drifting else "ok"] for c in result])]
    return "\n".join(lines) + "\n"

