"""The plots of the HTML report: one figure per recorded series, with its step's limits on it.

Everything drawn comes from the record: the series' rows as recorded, the limits as the step's
measurements were judged against them. A measurement belongs on a plot when it has the unit of
one of the series' columns and its value lies in that column's recorded range (it is a reading
of that quantity: the insulation resistance, the precharge time on the time axis); a difference
such as ``soc_agreement`` or ``sum_vs_pack`` falls outside and is left off.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from . import svg
from .record import format_limits, format_quantity, iter_measurements
from .svg import Mark, split_unit

_BAD = ("failed", "error", "aborted")
# A column unit that names a measurement's unit differently: a ``soc_pct`` column and a ``%``
# measurement both read 30 (records hold values in the unit they name, record schema 2).
_COLUMN_FACTOR = {("pct", "%"): 1.0}
_SIGNS = {"min": "≥", "max": "≤"}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _column(rows: list, i: int) -> list[float]:
    return [v for r in rows if i < len(r) and (v := _number(r[i])) is not None]


def step_of(record: dict[str, Any], series: dict[str, Any]) -> dict[str, Any] | None:
    """The step (path and attempt) that recorded ``series``."""
    return next((s for s in record["steps"] if s["path"] == series["path"]
                 and s["attempt"] == series["attempt"]), None)


def _limit_items(limits: dict[str, Any]) -> list[tuple[str, float]]:
    """The one-sided numeric limits (``min``, ``max``, ``production_min``...) of a measurement."""
    return [(k, float(v)) for k, v in (limits or {}).items()
            if (k in _SIGNS or k.endswith(("_min", "_max"))) and _number(v) is not None]


def _limit_label(name: str, key: str, value: float, unit: str) -> str:
    sign = _SIGNS.get(key) or f"{key[:-4]} {_SIGNS[key[-3:]]}"
    return f"{name} {sign} {format_quantity(value, unit)}"


def series_marks(step: dict[str, Any] | None, series: dict[str, Any]) -> list[Mark]:
    """Limit lines (and, on the x axis, the measured value) of the step's measurements, in
    the units of the column they are drawn on."""
    marks: list[Mark] = []
    columns, rows = series["columns"], series["rows"]
    for m in (step or {}).get("measurements", []):
        value, limits = _number(m["value"]), _limit_items(m["limits"])
        if value is None or not limits or not m["unit"]:
            continue
        for i, col in enumerate(columns):
            data, col_unit = _column(rows, i), split_unit(col)[1]
            factor = 1.0 if col_unit == m["unit"] else _COLUMN_FACTOR.get((col_unit, m["unit"]))
            if factor is None or not data:
                continue
            tol = (max(data) - min(data)) * 0.05 or abs(max(data)) * 1e-6
            if not min(data) - tol <= value * factor <= max(data) + tol:
                continue
            marks += [Mark(col, lim * factor, _limit_label(m["name"], key, lim, m["unit"]),
                           "limit", key) for key, lim in limits]
            if i == 0:  # where on the time axis the value was taken
                marks.append(Mark(col, value * factor,
                                  f"{m['name']} {format_quantity(value, m['unit'])}", "value"))
            break
    return marks


def cell_limits(record: dict[str, Any], series: dict[str, Any]) -> tuple[float | None, ...]:
    """(low, high, spread) for a cell-voltage series, SI; None where nothing was judged.

    From extra series columns (``min_V``/``max_V``) if recorded; else from the step's
    measurements whose values are the series' min, max and max − min: the limits those
    statistics were judged against. Older records without such matches: any cell-named
    voltage measurement's min/max.
    """
    low = high = spread = None
    for i, col in enumerate(series["columns"][2:], start=2):
        first = _number(series["rows"][0][i]) if series["rows"] else None
        if first is not None and col.lower().startswith(("min", "low", "limit_min")):
            low = first
        elif first is not None and col.lower().startswith(("max", "high", "limit_max")):
            high = first
    volts = _column(series["rows"], 1)
    unit = split_unit(series["columns"][1])[1] if len(series["columns"]) > 1 else "V"
    step = step_of(record, series)
    if volts and step is not None and low is None and high is None:
        stats = {"min": min(volts), "max": max(volts), "spread": max(volts) - min(volts)}
        for m in step["measurements"]:
            value, lim = _number(m["value"]), m["limits"] or {}
            if value is None or m["unit"] != unit:
                continue
            close = {k for k, s in stats.items() if math.isclose(value, s, rel_tol=1e-9,
                                                                 abs_tol=1e-12)}
            if "min" in close and _number(lim.get("min")) is not None:
                low = max(low, float(lim["min"])) if low is not None else float(lim["min"])
            if "max" in close and _number(lim.get("max")) is not None:
                high = min(high, float(lim["max"])) if high is not None else float(lim["max"])
            if close == {"spread"} and _number(lim.get("max")) is not None:
                spread = float(lim["max"])
    if low is None and high is None:
        low, high = _named_cell_limits(record, series)
    return low, high, spread


def _named_cell_limits(record: dict[str, Any], series: dict[str, Any]) -> tuple[float | None, ...]:
    low = high = None
    candidates = [m for m in iter_measurements(record)
                  if m["unit"] == "V" and "cell" in str(m["name"]).lower()]
    same_step = [m for m in candidates if m["path"] == series["path"]]
    for m in same_step or candidates:
        lim = m["limits"] or {}
        if _number(lim.get("min")) is not None:
            low = max(low, float(lim["min"])) if low is not None else float(lim["min"])
        if _number(lim.get("max")) is not None:
            high = min(high, float(lim["max"])) if high is not None else float(lim["max"])
    return low, high


def _caption(step: dict[str, Any] | None, series: dict[str, Any]) -> str:
    """Where the series comes from and the step's judged measurements, coloured by verdict."""
    path = f'<span class="mono">{escape(series["path"])}</span>'
    if step is not None:
        outcome = escape(step["outcome"] or "unfinished")
        path = (f'{escape(step["name"] or step["path"])} · {path} · step '
                f'<span class="o-{outcome}">{outcome}</span>')
    items = [f'<li class="m-{escape(m["verdict"])}">{escape(m["name"])} = '
             f'{escape(format_quantity(m["value"], m["unit"]))} <span class="lim">[{escape(lim)}]'
             f'</span> {escape(m["verdict"])}</li>'
             for m in (step or {}).get("measurements", [])
             if (lim := format_limits(m["limits"], m["unit"])) != "—"]
    listed = f"<ul>{''.join(items)}</ul>" if items else ""
    return f"<figcaption>{path} · {len(series['rows'])} recorded points{listed}</figcaption>"


def figure(record: dict[str, Any], series: dict[str, Any], anchor: str) -> str:
    """One ``<figure>``: the chart of ``series`` and the step's judged measurements."""
    step = step_of(record, series)
    title = f"{step['name'] if step and step['name'] else series['name']} ({series['path']})"
    if series["name"] == "cell_voltages" and len(series["columns"]) >= 2:
        low, high, spread = cell_limits(record, series)
        unit = split_unit(series["columns"][1])[1] or "V"
        chart = svg.cell_chart(series["name"], [r[0] for r in series["rows"]],
                               [r[1] for r in series["rows"]], unit=unit, low=low, high=high,
                               spread=spread, title=title)
    else:
        chart = svg.line_chart(series["name"], series["columns"], series["rows"], title=title,
                               marks=series_marks(step, series))
    bad = " failed" if step and step["outcome"] in _BAD else ""
    return (f'<figure id="{escape(anchor)}" class="plot{bad}">{chart}{_caption(step, series)}'
            "</figure>")


def plots_section(record: dict[str, Any]) -> str:
    """Every recorded series as a figure, anchored ``plot-N`` in record order."""
    figures = [figure(record, s, f"plot-{i}") for i, s in enumerate(record["series"])]
    return '<h2 id="plots">Plots</h2>' + "".join(figures) if figures else ""
