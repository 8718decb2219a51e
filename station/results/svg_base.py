"""The shared pieces of the report's SVG charts: axis mapping, tick values and labels, the
opening tag, the y axis and a text label. Below ``svg``, ``svg_marks`` and ``svg_cells``, which
all build on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

FONT = 'font-family="sans-serif" font-size="11"'


def text_at(x: float, y: float, text: str, anchor: str, colour: str, cls: str = "label") -> str:
    """A ``<text>`` element at (x, y) px, escaped, in the charts' font."""
    return (f'<text class="{cls}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{colour}" '
            f'{FONT}>{escape(text)}</text>')


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
    ticks = [start + i * step for i in range(round((stop - start) / step) + 1)]
    return start, stop, ticks


def tick_text(value: float, step: float) -> str:
    if abs(value) < step * 1e-6:
        return "0"
    if abs(value) >= 1e5 or step < 1e-4:
        return f"{value:.3g}"
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if step * 10**decimals % 1 > 1e-6:  # steps of 2.5 need one more digit
        decimals += 1
    return f"{value:.{decimals}f}"


def floats(values: Sequence[object]) -> list[float]:
    out = []
    for v in values:
        try:
            out.append(float(v))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            out.append(math.nan)
    return out


class Axis:
    """Maps data values onto a pixel interval."""

    def __init__(self, lo: float, hi: float, p0: float, p1: float) -> None:
        self.lo, self.hi, self.p0, self.p1 = lo, hi, p0, p1

    def __call__(self, v: float) -> float:
        return self.p0 + (v - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)


def svg_open(classes: str, name: str, width: int, height: int, title: str) -> list[str]:
    return [f'<svg class="{classes}" data-series="{escape(name)}" viewBox="0 0 {width} {height}"'
            f' width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
            f"<title>{escape(title)}</title>"]


def y_axis(out: list[str], ay: Axis, ticks: list[float], left: float, right: float,
            label: str) -> None:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    for v in ticks:
        y = ay(v)
        out.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" '
                   f'stroke="#e3e3e3"/>')
        out.append(f'<text class="tick" x="{left - 5}" y="{y + 4:.1f}" text-anchor="end" '
                   f'{FONT}>{tick_text(v, step)}</text>')
    mid = (ay.p0 + ay.p1) / 2
    out.append(f'<text class="label" x="14" y="{mid:.1f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {mid:.1f})" {FONT}>{escape(label)}</text>')
