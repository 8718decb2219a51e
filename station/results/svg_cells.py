"""The cell-voltage chart of the HTML report: every cell against its limits.

The main panel zooms on the cells (a lollipop strip around their mean) and shows the spread
limit as a band as wide as the limit, placed to hold the most cells: every cell inside means
the spread passes; the cells outside are the ones that make it fail.
Absolute limits near the cells are dashed lines there; limits far away (3.0 V and 4.2 V under
cells at 3.72 V) would squash the cells into a line, so they are drawn on a gauge beside the
panel, with the cells' range between them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from .record import format_quantity, unit_symbol
from .svg_base import FONT, Axis, floats, nice_ticks, svg_open, text_at, tick_text, y_axis
from .svg_marks import near

_RED, _AMBER, _BLUE, _GREEN = "#c0392b", "#d35400", "#1f6fb2", "#2e8b57"
_ZOOM_FLOOR_V = 0.05  # a limit within 50 mV of the cells shares their axis; farther, the gauge
_NAMED_OUTLIERS = 5


def _limit_line(out: list[str], key: str, lim: float, y: float, x0: float, x1: float,
                label: str) -> None:
    out.append(f'<line class="limit limit-{key}" data-value="{lim!r}" x1="{x0:.1f}" '
               f'y1="{y:.1f}" x2="{x1:.1f}" y2="{y:.1f}" stroke="{_RED}" '
               f'stroke-dasharray="6 4" stroke-width="1.4"/>')
    out.append(text_at(x1 - 4, y - 4, label, "end", _RED))


def _gauge(out: list[str], low: float | None, high: float | None, vmin: float, vmax: float,
           unit: str, x: float, top: float, bottom: float) -> None:
    """A narrow full-range axis: the absolute limits as lines, the cells' range as a bar."""
    span = [vmin, vmax, *(v for v in (low, high) if v is not None)]
    pad = (max(span) - min(span)) * 0.06 or 0.05
    lo, hi, ticks = nice_ticks(min(span) - pad, max(span) + pad, 5)
    ay = Axis(lo, hi, bottom, top)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    out.append(f'<g class="gauge" data-y-lo="{lo!r}" data-y-hi="{hi!r}">')
    out.append(f'<line class="axis" x1="{x}" y1="{top}" x2="{x}" y2="{bottom}" stroke="#777"/>')
    for t in ticks:
        out.append(f'<line class="grid" x1="{x - 4}" y1="{ay(t):.1f}" x2="{x}" y2="{ay(t):.1f}" '
                   f'stroke="#777"/>')
        out.append(f'<text class="tick" x="{x - 18}" y="{ay(t) + 4:.1f}" text-anchor="end" '
                   f'{FONT}>{tick_text(t, step)}</text>')
    out.append(f'<rect class="gauge-cells" x="{x - 6}" y="{ay(vmax) - 1:.1f}" width="12" '
               f'height="{max(ay(vmin) - ay(vmax), 0) + 2:.1f}" fill="{_BLUE}">'
               f'<title>cells {vmin:.4f}–{vmax:.4f} {escape(unit)}</title></rect>')
    out.append(text_at(x + 18, (ay(vmin) + ay(vmax)) / 2 + 4, "cells", "start", _BLUE))
    for key, lim in (("min", low), ("max", high)):
        if lim is not None:
            out.append(f'<line class="gauge-limit limit-{key}" data-value="{lim!r}" x1="{x - 14}"'
                       f' y1="{ay(lim):.1f}" x2="{x + 14}" y2="{ay(lim):.1f}" stroke="{_RED}" '
                       f'stroke-width="2"/>')
            out.append(text_at(x + 18, ay(lim) + 4, f"{key} {lim:.4g} {unit}", "start", _RED))
    out.append(text_at(x, bottom + 32, "limits", "middle", "#555"))
    out.append("</g>")


def spread_window(values: Sequence[float], spread: float) -> tuple[float, float, int]:
    """The ``spread``-wide band holding the most cells: (low edge, high edge, cells inside).

    The cells outside it are the fewest that must go for the spread limit to pass; when it
    passes, the band holds every cell. The band is centred on the cells it holds; among equal
    counts, the one nearest the median wins.
    """
    v = sorted(values)
    if not v:
        return 0.0, spread, 0
    median, best, j = v[len(v) // 2], None, 0
    for i in range(len(v)):
        j = max(j, i)
        while j < len(v) and v[j] - v[i] <= spread * (1 + 1e-9):
            j += 1
        mid = (v[i] + v[j - 1]) / 2
        key = (j - i, -abs(mid - median))
        if best is None or key > best[0]:
            best = (key, mid)
    (count, _), mid = best
    return mid - spread / 2, mid + spread / 2, count


def cell_chart(name: str, cells: Sequence[object], volts: Sequence[object], *,
               unit: str = "V", low: float | None = None, high: float | None = None,
               spread: float | None = None, title: str = "", width: int = 900,
               height: int = 300) -> str:
    """Per-cell values as a lollipop strip around their mean, with the limits marked.

    ``low``/``high`` are the absolute limits, ``spread`` the largest allowed max − min (all SI).
    Cells outside [low, high] are red with class ``out``; cells outside the spread band
    (``spread_window``) amber with class ``over-spread``; the others class ``ok``. The first
    few outliers are named beside their dot.
    """
    v, idx = floats(volts), floats(cells)
    finite = [a for a in v if math.isfinite(a)] or [0.0]
    vmin, vmax = min(finite), max(finite)
    sym = unit_symbol(unit)
    floor = _ZOOM_FLOOR_V if unit == "V" else None
    near_lims = {k: lim for k, lim in (("min", low), ("max", high))
                 if lim is not None and near(lim, vmin, vmax, floor)}
    band = spread_window(finite, spread) if spread is not None else None
    band_shown = band is not None and all(near(b, vmin, vmax, floor) for b in band[:2])
    gauge = any(lim is not None and k not in near_lims for k, lim in (("min", low), ("max", high)))
    span = [*finite, *near_lims.values(), *(band[:2] if band_shown else ())]
    pad = (max(span) - min(span)) * 0.08 or 0.01
    y_lo, y_hi, y_ticks = nice_ticks(min(span) - pad, max(span) + pad, 5)
    x_lo, x_hi, x_ticks = nice_ticks(min(idx, default=0.0) - 0.5, max(idx, default=1.0) + 0.5, 8)
    x_ticks = [t for t in x_ticks if float(t).is_integer()] or x_ticks  # cells are counted
    left, top, bottom = 72, 30, height - 40
    right = width - 16 - (150 if gauge else 0)
    ax, ay = Axis(x_lo, x_hi, left, right), Axis(y_lo, y_hi, bottom, top)
    mean = sum(finite) / len(finite)
    label = (f"{title or name}: {len(finite)} cells, min {vmin:.4f} {sym}, max {vmax:.4f} {sym}, "
             f"spread {format_quantity(vmax - vmin, unit)}")
    out = svg_open("plot cell-voltages", name, width, height, label)
    out.append(f'<text class="label" x="{left}" y="18" {FONT} font-weight="bold">'
               f'{escape(label)}</text>')
    y_axis(out, ay, y_ticks, left, right, f"cell voltage [{sym}]")
    out.append(f'<rect class="axis" x="{left}" y="{top}" width="{right - left}" '
               f'height="{bottom - top}" fill="none" stroke="#777" data-y-lo="{y_lo!r}" '
               f'data-y-hi="{y_hi!r}"/>')
    if band_shown:
        out.append(f'<rect class="limit spread-band limit-spread" data-value="{spread!r}" '
                   f'data-from="{band[0]!r}" x="{left}" y="{ay(band[1]):.1f}" '
                   f'width="{right - left}" height="{ay(band[0]) - ay(band[1]):.1f}" '
                   f'fill="{_GREEN}" fill-opacity="0.10" stroke="{_RED}" stroke-dasharray="6 4"/>')
        out.append(text_at(left + 4, ay(band[1]) - 4, f"spread ≤ {format_quantity(spread, unit)}: "
                         f"this band holds {band[2]} of {len(finite)} cells", "start", _RED))
    elif spread is not None:
        out.append(text_at(left + 4, top + 12, f"spread ≤ {format_quantity(spread, unit)} ↑ "
                         "(off scale)", "start", _RED, "label limit-spread off-scale"))
    out.append(f'<line class="mean" x1="{left}" y1="{ay(mean):.1f}" x2="{right}" '
               f'y2="{ay(mean):.1f}" stroke="#999" stroke-dasharray="2 3"/>')
    for key, lim in (("min", low), ("max", high)):
        if lim is not None and key in near_lims:
            _limit_line(out, key, lim, ay(lim), left, right, f"{key} {lim:.4g} {sym}")
        elif lim is not None:
            y, arrow = (bottom - 4, "↓") if key == "min" else (top + 12, "↑")
            out.append(text_at(right - 4, y, f"{key} {lim:.4g} {sym} {arrow} (off scale, on the "
                             "right)", "end", _RED, f"label limit-{key} off-scale"))
    radius, outliers = (3.0 if len(v) <= 200 else 1.6), []
    for c, a in zip(idx, v):
        if not (math.isfinite(c) and math.isfinite(a)):
            continue
        out_of_limits = (low is not None and a < low) or (high is not None and a > high)
        over = band is not None and not band[0] - abs(band[0]) * 1e-9 <= a <= band[1] * (1 + 1e-9)
        cls, colour = (("out", _RED) if out_of_limits else ("over-spread", _AMBER) if over
                       else ("ok", _BLUE))
        if cls != "ok":
            outliers.append((c, a, colour))
        out.append(f'<line class="stem" x1="{ax(c):.1f}" y1="{ay(mean):.1f}" x2="{ax(c):.1f}" '
                   f'y2="{ay(a):.1f}" stroke="{colour}" stroke-opacity="0.5"/>')
        out.append(f'<circle class="cell {cls}" cx="{ax(c):.1f}" cy="{ay(a):.1f}" r="{radius}" '
                   f'fill="{colour}"><title>cell {c:g}: {a:.4f} {escape(sym)}</title></circle>')
    for c, a, colour in outliers[:_NAMED_OUTLIERS]:  # a few are named; many show as colour
        out.append(text_at(ax(c) + 6, ay(a) + 4, f"cell {c:g}: {a:.4f} {sym}", "start", colour,
                         "label outlier"))
    x_step = x_ticks[1] - x_ticks[0] if len(x_ticks) > 1 else 1.0
    for t in x_ticks:
        out.append(f'<text class="tick" x="{ax(t):.1f}" y="{bottom + 14}" text-anchor="middle" '
                   f'{FONT}>{tick_text(t, x_step)}</text>')
    out.append(f'<text class="label" x="{(left + right) / 2}" y="{bottom + 32}" '
               f'text-anchor="middle" {FONT}>cell</text>')
    if gauge:
        _gauge(out, low, high, vmin, vmax, sym, width - 90, top, bottom)
    out.append("</svg>")
    return "\n".join(out)
