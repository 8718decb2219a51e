"""Tiny inline-SVG charts for the HTML report: line charts of series with limit marks.

No dependencies and no JavaScript. Every chart is ``<svg class="plot ..." data-series=NAME>``
so headless tests can find it. Axis values are scaled to an SI prefix (``[MΩ]``, ``[mV]``).
All text is escaped. The cell-voltage chart is in ``svg_cells``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from html import escape

from .record import SI_PREFIXES, si_exponent, unit_symbol
from .svg_base import FONT, Axis, floats, nice_ticks, svg_open, tick_text, y_axis
from .svg_cells import cell_chart
from .svg_marks import Mark, draw_panel_marks, draw_x_marks, near

__all__ = ["Mark", "cell_chart", "decimate", "gap_limit", "line_chart", "nice_ticks", "si_scale", "split_unit"]

_UNIT_SUFFIXES = {"V", "mV", "kV", "A", "mA", "kA", "s", "ms", "min", "h", "ohm", "mohm",
                  "mOhm", "kohm", "kOhm", "Mohm", "MOhm", "W", "kW", "Wh", "kWh", "Ah", "degC",
                  "K", "C", "Pa", "kPa", "F", "mF", "uF", "Hz", "pct", "percent", "%"}
_COLOURS = ("#1f6fb2", "#c2571a", "#2e8b57", "#8e44ad", "#b8860b", "#555")
_MAX_DOTS = 200  # samples drawn as dots up to this many per panel
_MAX_POINTS = 2000  # a longer series is thinned (min and max per bucket) to about this many


def split_unit(column: str) -> tuple[str, str]:
    """``"voltage_V"`` → ``("voltage", "V")``; a column without a unit suffix → ``(col, "")``."""
    name, sep, unit = column.rpartition("_")
    if sep and name and unit in _UNIT_SUFFIXES:
        return name, unit
    return column, ""


def si_scale(values: Sequence[float], unit: str) -> tuple[float, str]:
    """Divisor and shown unit so the largest magnitude reads 1–999 (``ohm`` → ``MΩ``)."""
    peak = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    exp = si_exponent(peak, unit)
    return 10.0**exp, SI_PREFIXES[exp] + unit_symbol(unit)


def decimate(x: list[float], y: list[float], max_points: int = _MAX_POINTS) -> tuple[list, list]:
    """Keep the min and max of each bucket so spikes survive thinning to ~max_points."""
    n = len(x)
    if n <= max_points:
        return x, y
    size = math.ceil(n / (max_points // 2))
    xs, ys = [], []
    for start in range(0, n, size):
        idx = [i for i in range(start, min(n, start + size)) if math.isfinite(y[i])]
        if not idx:
            continue
        lo, hi = min(idx, key=y.__getitem__), max(idx, key=y.__getitem__)
        for i in sorted({lo, hi}):
            xs.append(x[i])
            ys.append(y[i])
    return xs, ys


def gap_limit(xs: Sequence[float]) -> float:
    """The x step beyond which two samples are not joined: 3 × the median step (a pause in
    the recording, e.g. the rest between a discharge and a regen pulse, is shown as a gap
    rather than as an invented ramp). Infinite for fewer than 4 samples."""
    steps = sorted(b - a for a, b in itertools.pairwise(xs) if math.isfinite(a) and math.isfinite(b)
                   and b > a)
    return 3 * steps[len(steps) // 2] if len(steps) >= 3 else math.inf


def _path(xs: list[float], ys: list[float], ax: Axis, ay: Axis,
          pause: float = math.inf) -> str:
    parts, pen_down, last_x = [], False, math.nan
    for x, y in zip(xs, ys):
        if not (math.isfinite(x) and math.isfinite(y)):
            pen_down = False
            continue
        pen_down = pen_down and x - last_x <= pause
        parts.append(f"{'L' if pen_down else 'M'}{ax(x):.1f} {ay(y):.1f}")
        pen_down, last_x = True, x
    return " ".join(parts)


def _samples(xs: list[float], ys: list[float], ax: Axis, ay: Axis, colour: str) -> str:
    """The recorded samples as dots, for short series where each one can be seen."""
    dots = "".join(f'<circle cx="{ax(x):.1f}" cy="{ay(y):.1f}" r="1.8"/>'
                   for x, y in zip(xs, ys) if math.isfinite(x) and math.isfinite(y))
    return f'<g class="samples" fill="{colour}">{dots}</g>'


def line_chart(name: str, columns: Sequence[str], rows: Sequence[Sequence[object]], *,
               title: str = "", marks: Sequence[Mark] = (), width: int = 900,
               panel_height: int = 170) -> str:
    """One panel per y column (own axis and unit) against the first column, stacked; the
    recorded samples as a line (broken over pauses, see ``gap_limit``) and, if few, as dots.

    A time axis (``t_s`` ≥ 0: time since the action started) starts at 0, so a curve that
    begins late shows its gap. ``marks`` on a y column draw on its panel, on the first column
    across all panels; a mark near the data widens the axis to show it, a far one is labelled.
    Each panel's frame carries its data range (SI) as ``data-x-lo/hi``, ``data-y-lo/hi``.
    """
    columns = list(columns) or ["value"]
    data = [floats(col) for col in zip(*rows)] if rows else [[] for _ in columns]
    if len(columns) == 1:  # a lone column is plotted against its index
        columns, data = ["index", *columns], [[float(i) for i in range(len(rows))], *data]
    x_label, x_unit = split_unit(columns[0])
    x_label = x_label.replace("_", " ")
    x_scale, x_shown = si_scale(data[0], x_unit)
    x = [v / x_scale for v in data[0]]
    finite_x = [v for v in x if math.isfinite(v)] or [0.0]
    x_span = [min(finite_x), max(finite_x)]
    if x_unit == "s" and x_span[0] >= 0:
        x_span[0] = 0.0
    x_marks = [m for m in marks if m.column == columns[0]]
    x_span += [m.value / x_scale for m in x_marks if near(m.value / x_scale, *x_span)]
    x_lo, x_hi, x_ticks = nice_ticks(min(x_span), max(x_span), 6)
    # decimation keeps two samples a bucket, so joined samples can lie two buckets apart
    pause = gap_limit(x) * (2 * math.ceil(len(x) / (_MAX_POINTS // 2)) if len(x) > _MAX_POINTS
                          else 1)
    left, right, top, gap = 72, width - 16, 30, 22
    panels = len(columns) - 1
    height = top + panels * (panel_height + gap) + 26
    ax = Axis(x_lo, x_hi, left, right)
    out = svg_open("plot series", name, width, height, title or name)
    out.append(f'<text class="label" x="{left}" y="18" {FONT} font-weight="bold">'
               f'{escape(title or name)}</text>')
    for i, col in enumerate(columns[1:]):
        y_label, y_unit = split_unit(col)
        y_label = y_label.replace("_", " ")
        y_scale, y_shown = si_scale(data[i + 1], y_unit)
        y = [v / y_scale for v in data[i + 1]]
        finite_y = [v for v in y if math.isfinite(v)] or [0.0]
        col_marks = [m for m in marks if m.column == col]
        span = [min(finite_y), max(finite_y)]
        span += [m.value / y_scale for m in col_marks if near(m.value / y_scale, *span)]
        y_lo, y_hi, y_ticks = nice_ticks(min(span), max(span), 4)
        p_top = top + i * (panel_height + gap)
        ay = Axis(y_lo, y_hi, p_top + panel_height, p_top)
        y_axis(out, ay, y_ticks, left, right, f"{y_label} [{y_shown}]" if y_shown else y_label)
        for v in x_ticks:
            out.append(f'<line class="grid" x1="{ax(v):.1f}" y1="{p_top}" x2="{ax(v):.1f}" '
                       f'y2="{p_top + panel_height}" stroke="#efefef"/>')
        out.append(f'<rect class="axis" x="{left}" y="{p_top}" width="{right - left}" '
                   f'height="{panel_height}" fill="none" stroke="#777" data-column="{escape(col)}"'
                   f' data-x-lo="{x_lo * x_scale!r}" data-x-hi="{x_hi * x_scale!r}" '
                   f'data-y-lo="{y_lo * y_scale!r}" data-y-hi="{y_hi * y_scale!r}"/>')
        draw_panel_marks(out, col_marks, ay, y_scale, left, right, p_top, p_top + panel_height)
        xs, ys = decimate(x, y)
        colour = _COLOURS[i % len(_COLOURS)]
        out.append(f'<path class="line" data-column="{escape(col)}" '
                   f'd="{_path(xs, ys, ax, ay, pause)}" fill="none" stroke="{colour}" '
                   f'stroke-width="1.6"/>')
        if len(xs) <= _MAX_DOTS:
            out.append(_samples(xs, ys, ax, ay, colour))
    bottom = top + panels * (panel_height + gap) - gap
    draw_x_marks(out, x_marks, ax, x_scale, top, bottom, right)
    x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1.0
    for v in x_ticks:
        out.append(f'<text class="tick" x="{ax(v):.1f}" y="{bottom + 14}" text-anchor="middle" '
                   f'{FONT}>{tick_text(v, x_step)}</text>')
    out.append(f'<text class="label" x="{(left + right) / 2}" y="{bottom + 30}" '
               f'text-anchor="middle" {FONT}>'
               f'{escape(f"{x_label} [{x_shown}]" if x_shown else x_label)}</text>')
    out.append("</svg>")
    return "\n".join(out)

