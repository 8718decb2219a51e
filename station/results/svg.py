"""Tiny inline-SVG charts for the HTML report: line charts of series, a cell-voltage strip.

No dependencies and no JavaScript. Every chart is ``<svg class="plot ..." data-series=NAME>``
so headless tests can find it. Axis values are scaled to an SI prefix (``[MΩ]``, ``[mV]``).
All text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from .record import SI_PREFIXES, si_exponent, unit_symbol

_UNIT_SUFFIXES = {"V", "mV", "kV", "A", "mA", "kA", "s", "ms", "min", "h", "ohm", "mohm",
                  "mOhm", "kohm", "kOhm", "Mohm", "MOhm", "W", "kW", "Wh", "kWh", "Ah", "degC",
                  "K", "C", "Pa", "kPa", "F", "mF", "uF", "Hz", "pct", "percent", "%"}
_COLOURS = ("#1f6fb2", "#c2571a", "#2e8b57", "#8e44ad", "#b8860b", "#555")
_FONT = 'font-family="sans-serif" font-size="11"'


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


def nice_ticks(lo: float, hi: float, count: int = 5) -> tuple[float, float, list[float]]:
    """A rounded axis range covering [lo, hi] and ~``count`` ticks at 1/2/2.5/5 × 10^n."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi - lo <= abs(hi) * 1e-12:
        pad = abs(hi) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / count
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
    start, stop = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    ticks = [start + i * step for i in range(int(round((stop - start) / step)) + 1)]
    return start, stop, ticks


def _tick_text(value: float, step: float) -> str:
    if abs(value) < step * 1e-6:
        return "0"
    if abs(value) >= 1e5 or step < 1e-4:
        return f"{value:.3g}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if step * 10**decimals % 1 > 1e-6:  # steps of 2.5 need one more digit
        decimals += 1
    return f"{value:.{decimals}f}"


def _floats(values: Sequence[object]) -> list[float]:
    out = []
    for v in values:
        try:
            out.append(float(v))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            out.append(math.nan)
    return out


def decimate(x: list[float], y: list[float], max_points: int = 2000) -> tuple[list, list]:
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


class _Axis:
    """Maps data values onto a pixel interval."""

    def __init__(self, lo: float, hi: float, p0: float, p1: float) -> None:
        self.lo, self.hi, self.p0, self.p1 = lo, hi, p0, p1

    def __call__(self, v: float) -> float:
        return self.p0 + (v - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)


def _path(xs: list[float], ys: list[float], ax: _Axis, ay: _Axis) -> str:
    parts, pen_down = [], False
    for x, y in zip(xs, ys):
        if not (math.isfinite(x) and math.isfinite(y)):
            pen_down = False
            continue
        parts.append(f"{'L' if pen_down else 'M'}{ax(x):.1f} {ay(y):.1f}")
        pen_down = True
    return " ".join(parts)


def _svg_open(classes: str, name: str, width: int, height: int, title: str) -> list[str]:
    return [f'<svg class="{classes}" data-series="{escape(name)}" viewBox="0 0 {width} {height}"'
            f' width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
            f"<title>{escape(title)}</title>"]


def _y_axis(out: list[str], ay: _Axis, ticks: list[float], left: float, right: float,
            label: str) -> None:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    for v in ticks:
        y = ay(v)
        out.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" '
                   f'stroke="#e3e3e3"/>')
        out.append(f'<text class="tick" x="{left - 5}" y="{y + 4:.1f}" text-anchor="end" '
                   f'{_FONT}>{_tick_text(v, step)}</text>')
    mid = (ay.p0 + ay.p1) / 2
    out.append(f'<text class="label" x="14" y="{mid:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {mid:.1f})" {_FONT}>{escape(label)}</text>')


def line_chart(name: str, columns: Sequence[str], rows: Sequence[Sequence[object]], *,
               title: str = "", width: int = 720, panel_height: int = 160) -> str:
    """One panel per y column (own axis and unit) against the first column, stacked."""
    columns = list(columns) or ["value"]
    data = [_floats(col) for col in zip(*rows)] if rows else [[] for _ in columns]
    if len(columns) == 1:  # a lone column is plotted against its index
        columns, data = ["index", *columns], [[float(i) for i in range(len(rows))], *data]
    x_label, x_unit = split_unit(columns[0])
    x_scale, x_shown = si_scale(data[0], x_unit)
    x = [v / x_scale for v in data[0]]
    finite_x = [v for v in x if math.isfinite(v)] or [0.0]
    x_lo, x_hi, x_ticks = nice_ticks(min(finite_x), max(finite_x), 6)
    left, right, top, gap = 72, width - 16, 30, 22
    panels = len(columns) - 1
    height = top + panels * (panel_height + gap) + 26
    ax = _Axis(x_lo, x_hi, left, right)
    out = _svg_open("plot series", name, width, height, title or name)
    out.append(f'<text class="label" x="{left}" y="18" {_FONT} font-weight="bold">'
               f'{escape(title or name)}</text>')
    for i, col in enumerate(columns[1:]):
        y_label, y_unit = split_unit(col)
        y_scale, y_shown = si_scale(data[i + 1], y_unit)
        y = [v / y_scale for v in data[i + 1]]
        finite_y = [v for v in y if math.isfinite(v)] or [0.0]
        y_lo, y_hi, y_ticks = nice_ticks(min(finite_y), max(finite_y), 4)
        p_top = top + i * (panel_height + gap)
        ay = _Axis(y_lo, y_hi, p_top + panel_height, p_top)
        _y_axis(out, ay, y_ticks, left, right, f"{y_label} [{y_shown}]" if y_shown else y_label)
        for v in x_ticks:
            out.append(f'<line class="grid" x1="{ax(v):.1f}" y1="{p_top}" x2="{ax(v):.1f}" '
                       f'y2="{p_top + panel_height}" stroke="#efefef"/>')
        out.append(f'<rect class="axis" x="{left}" y="{p_top}" width="{right - left}" '
                   f'height="{panel_height}" fill="none" stroke="#777"/>')
        xs, ys = decimate(x, y)
        out.append(f'<path class="line" data-column="{escape(col)}" d="{_path(xs, ys, ax, ay)}" '
                   f'fill="none" stroke="{_COLOURS[i % len(_COLOURS)]}" stroke-width="1.6"/>')
    bottom = top + panels * (panel_height + gap) - gap
    x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1.0
    for v in x_ticks:
        out.append(f'<text class="tick" x="{ax(v):.1f}" y="{bottom + 14}" text-anchor="middle" '
                   f'{_FONT}>{_tick_text(v, x_step)}</text>')
    out.append(f'<text class="label" x="{(left + right) / 2}" y="{bottom + 30}" '
               f'text-anchor="middle" {_FONT}>'
               f'{escape(f"{x_label} [{x_shown}]" if x_shown else x_label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def cell_chart(name: str, cells: Sequence[object], volts: Sequence[object], *,
               unit: str = "V", low: float | None = None, high: float | None = None,
               title: str = "", width: int = 720, height: int = 260) -> str:
    """Per-cell values as a lollipop strip around their mean, limits as dashed lines.

    Cells outside [low, high] are drawn red with class ``out``; the others class ``ok``.
    """
    v = _floats(volts)
    idx = _floats(cells)
    finite = [a for a in v if math.isfinite(a)] or [0.0]
    # A limit far from the data (2.5 V floor under 3.3 V cells) would squash the spread into
    # a line: such limits are marked at the edge instead of stretching the axis.
    window = max((max(finite) - min(finite)) * 3, 0.05)
    near = {k: lim for k, lim in (("min", low), ("max", high)) if lim is not None
            and min(finite) - window <= lim <= max(finite) + window}
    span = [*finite, *near.values()]
    pad = (max(span) - min(span)) * 0.08 or 0.01
    y_lo, y_hi, y_ticks = nice_ticks(min(span) - pad, max(span) + pad, 5)
    x_lo, x_hi, x_ticks = nice_ticks(min(idx, default=0.0) - 0.5, max(idx, default=1.0) + 0.5, 8)
    x_ticks = [t for t in x_ticks if float(t).is_integer()] or x_ticks  # cells are counted
    left, right, top, bottom = 72, width - 16, 30, height - 40
    ax, ay = _Axis(x_lo, x_hi, left, right), _Axis(y_lo, y_hi, bottom, top)
    mean = sum(finite) / len(finite)
    sym = unit_symbol(unit)
    label = (f"{title or name}: {len(finite)} cells, min {min(finite):.4f} {sym}, max "
             f"{max(finite):.4f} {sym}, spread {(max(finite) - min(finite)) * 1000:.1f} m{sym}")
    out = _svg_open("plot cell-voltages", name, width, height, label)
    out.append(f'<text class="label" x="{left}" y="18" {_FONT} font-weight="bold">'
               f'{escape(label)}</text>')
    _y_axis(out, ay, y_ticks, left, right, f"cell voltage [{unit_symbol(unit)}]")
    out.append(f'<rect class="axis" x="{left}" y="{top}" width="{right - left}" '
               f'height="{bottom - top}" fill="none" stroke="#777"/>')
    out.append(f'<line class="mean" x1="{left}" y1="{ay(mean):.1f}" x2="{right}" '
               f'y2="{ay(mean):.1f}" stroke="#999" stroke-dasharray="2 3"/>')
    for key, lim in (("min", low), ("max", high)):
        if lim is not None and key not in near:
            y, arrow = (bottom - 4, "↓") if key == "min" else (top + 12, "↑")
            out.append(f'<text class="label limit-{key} off-scale" x="{right - 4}" y="{y}" '
                       f'text-anchor="end" fill="#c0392b" {_FONT}>{key} {lim:.4g} '
                       f'{escape(unit_symbol(unit))} {arrow}</text>')
        elif lim is not None:
            y = ay(lim)
            out.append(f'<line class="limit limit-{key}" x1="{left}" y1="{y:.1f}" x2="{right}" '
                       f'y2="{y:.1f}" stroke="#c0392b" stroke-dasharray="6 4"/>')
            out.append(f'<text class="label" x="{right - 4}" y="{y - 4:.1f}" text-anchor="end" '
                       f'fill="#c0392b" {_FONT}>{key} {lim:.4g} {escape(unit_symbol(unit))}</text>')
    radius = 3.0 if len(v) <= 200 else 1.6
    for c, a in zip(idx, v):
        if not (math.isfinite(c) and math.isfinite(a)):
            continue
        bad = (low is not None and a < low) or (high is not None and a > high)
        colour = "#c0392b" if bad else "#1f6fb2"
        out.append(f'<line class="stem" x1="{ax(c):.1f}" y1="{ay(mean):.1f}" x2="{ax(c):.1f}" '
                   f'y2="{ay(a):.1f}" stroke="{colour}" stroke-opacity="0.5"/>')
        out.append(f'<circle class="cell {"out" if bad else "ok"}" cx="{ax(c):.1f}" '
                   f'cy="{ay(a):.1f}" r="{radius}" fill="{colour}"><title>cell {c:g}: '
                   f'{a:.4f} {escape(unit_symbol(unit))}</title></circle>')
    x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1.0
    for t in x_ticks:
        out.append(f'<text class="tick" x="{ax(t):.1f}" y="{bottom + 14}" text-anchor="middle" '
                   f'{_FONT}>{_tick_text(t, x_step)}</text>')
    out.append(f'<text class="label" x="{(left + right) / 2}" y="{bottom + 32}" '
               f'text-anchor="middle" {_FONT}>cell</text>')
    out.append("</svg>")
    return "\n".join(out)
