"""Reference lines on the report's charts: limits (dashed red) and measured values (dotted).

Marks are in SI units of a series column; a mark far outside the data is named with an arrow
instead of stretching the axis (``near``).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from .svg_base import Axis, text_at


@dataclass(frozen=True)
class Mark:
    """A reference line on a chart, in SI units of ``column`` (the first column is the x axis).

    ``kind`` is ``limit`` (dashed red, ``key`` says which: ``min``, ``max``, ``production_min``)
    or ``value`` (dotted grey: where a measurement was taken).
    """

    column: str
    value: float
    label: str
    kind: str = "limit"
    key: str = ""


def near(value: float, lo: float, hi: float, floor: float | None = None) -> bool:
    """Whether ``value`` can share an axis with data spanning [lo, hi] without squashing it:
    within three spans of it, or within ``floor`` (default 5 % of ``hi``) for flat data."""
    window = max((hi - lo) * 3, abs(hi) * 0.05 if floor is None else floor, 1e-12)
    return lo - window <= value <= hi + window


def _mark_attrs(m: Mark) -> str:
    cls = f"limit limit-{escape(m.key or 'value')}" if m.kind == "limit" else "mark measured"
    colour, dash = ("#c0392b", "6 4") if m.kind == "limit" else ("#555", "2 3")
    return (f'class="{cls}" data-value="{m.value!r}" data-column="{escape(m.column)}" '
            f'stroke="{colour}" stroke-dasharray="{dash}" stroke-width="1.4"')


def draw_panel_marks(out: list[str], marks: list[Mark], ay: Axis, scale: float, left: float,
                 right: float, top: float, bottom: float) -> None:
    """Horizontal reference lines of one panel; those off its scale as an arrow label."""
    for m in marks:
        colour = "#c0392b" if m.kind == "limit" else "#555"
        v = m.value / scale
        if not min(ay.hi, ay.lo) <= v <= max(ay.hi, ay.lo):
            arrow, y = ("↑", top + 12) if v > ay.hi else ("↓", bottom - 4)
            out.append(text_at(right - 4, y, f"{m.label} {arrow} (off scale)", "end", colour,
                             f"label limit-{escape(m.key)} off-scale"))
            continue
        y = ay(v)
        out.append(f'<line {_mark_attrs(m)} x1="{left}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}"/>')
        out.append(text_at(right - 4, y - 4, m.label, "end", colour) if m.kind == "limit"
                   else text_at(left + 4, y - 4, m.label, "start", colour))


def draw_x_marks(out: list[str], marks: list[Mark], ax: Axis, scale: float, top: float,
             bottom: float, right: float) -> None:
    """Vertical reference lines through every panel (a time limit, a measured time)."""
    for i, m in enumerate(marks):
        colour = "#c0392b" if m.kind == "limit" else "#555"
        v = m.value / scale
        if not ax.lo <= v <= ax.hi:
            arrow = "→" if v > ax.hi else "←"
            out.append(text_at(right - 4, top + 12 + 14 * i, f"{m.label} {arrow} (off scale)", "end",
                             colour, f"label limit-{escape(m.key)} off-scale"))
            continue
        x, y = ax(v), bottom - 6 - 14 * i  # curves mostly start low and rise: label low
        out.append(f'<line {_mark_attrs(m)} x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}"/>')
        out.append(text_at(x + 4, y, m.label, "start", colour) if x < right - 150
                   else text_at(x - 4, y, m.label, "end", colour))
