"""Inline-SVG plots of the engineering analytics (no scripts, no fonts, no network).

- ``control_chart``: individuals with centre, 3σ limits and the points a rule flagged (red),
  with the moving-range chart below (golden-pack drift);
- ``bars``: labelled horizontal bars with reference lines (gauge R&R components in % of total
  variation with the 10 % and 30 % lines; yield before/after a limit change);
- ``band``: the spread of a measurement (mean ± 3σ) against the recorded and the new limits.

Every plot is ``<svg class="KIND" data-key="...">`` so tests can find it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from html import escape

from station.results.svg import nice_ticks

from .stats_text import fmt

_RED, _BLUE, _GREEN, _GREY = "#c0392b", "#1f6fb2", "#2e8b57", "#888"


def _open(kind: str, key: str, width: int, height: int, title: str) -> list[str]:
    k = escape(key, quote=True)
    return [f'<svg class="{kind}" data-key="{k}" xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" role="img">',
            f"<title>{escape(title)}</title>"]


def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def control_chart(key: str, values: Sequence[float], *, centre: float | None, lcl: float | None,
                  ucl: float | None, mr_ucl: float | None, flagged: set[int], baseline: int,
                  unit: str = "", width: int = 640) -> str:
    """Individuals chart over a moving-range chart; flagged points red."""
    height, split = 260, 170
    left, right = 64, width - 12
    out = _open("control", key, width, height, f"{key} individuals / moving range")
    marks = [v for v in (centre, lcl, ucl) if v is not None]
    lo, hi, ticks = nice_ticks(min(list(values) + marks), max(list(values) + marks), 4)
    y = _scale(lo, hi, split - 20, 10)
    x = _scale(0, max(len(values) - 1, 1), left, right)
    out.append(f'<rect x="{left}" y="10" width="{right - left}" height="{split - 30}" fill="none" stroke="#777"/>')
    for t in ticks:
        out.append(f'<text x="{left - 4}" y="{y(t) + 4:.1f}" text-anchor="end" font-size="10">{escape(fmt(t))}</text>')
    if baseline > 1:
        out.append(f'<line class="baseline-end" x1="{x(baseline - 0.5):.1f}" x2="{x(baseline - 0.5):.1f}" '
                   f'y1="10" y2="{split - 20}" stroke="{_GREY}" stroke-dasharray="2 2"/>')
    for value, cls, colour in ((centre, "centre", _GREEN), (ucl, "ucl", _RED), (lcl, "lcl", _RED)):
        if value is not None:
            out.append(f'<line class="{cls}" x1="{left}" x2="{right}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                       f'stroke="{colour}" stroke-dasharray="4 3"/><text x="{right - 2}" y="{y(value) - 3:.1f}" '
                       f'text-anchor="end" font-size="10" fill="{colour}">{cls.upper()}</text>')
    pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
    out.append(f'<polyline class="values" points="{pts}" fill="none" stroke="{_BLUE}"/>')
    for i, v in enumerate(values):
        cls, colour = ("flagged", _RED) if i in flagged else ("point", _BLUE)
        out.append(f'<circle class="{cls}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="{3 if i in flagged else 2}" fill="{colour}"/>')
    mrs = [abs(b - a) for a, b in itertools.pairwise(values)]
    if mrs:
        top = max(mrs + ([mr_ucl] if mr_ucl else []))
        ym = _scale(0, top or 1.0, height - 22, split + 4)
        out.append(f'<rect x="{left}" y="{split + 4}" width="{right - left}" height="{height - 26 - split}" '
                   f'fill="none" stroke="#777"/>')
        mpts = " ".join(f"{x(i + 1):.1f},{ym(v):.1f}" for i, v in enumerate(mrs))
        out.append(f'<polyline class="moving-range" points="{mpts}" fill="none" stroke="{_BLUE}"/>')
        if mr_ucl:
            out.append(f'<line class="mr-ucl" x1="{left}" x2="{right}" y1="{ym(mr_ucl):.1f}" y2="{ym(mr_ucl):.1f}" '
                       f'stroke="{_RED}" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{left - 4}" y="{split + 14}" text-anchor="end" font-size="10">MR</text>')
    out.append(f'<text x="{(left + right) / 2}" y="{height - 6}" text-anchor="middle" font-size="10">'
               f"run (time order){', ' + escape(unit) if unit else ''}</text></svg>")
    return "\n".join(out)


def bars(key: str, items: Sequence[tuple[str, float | None]], *, refs: Sequence[tuple[float, str]] = (),
         top: float | None = None, suffix: str = "%", width: int = 520) -> str:
    """Horizontal bars (label, value) from 0, with labelled vertical reference lines."""
    row = 22
    height = 20 + row * len(items) + 16
    left, right = 130, width - 50
    peak = max([v for _, v in items if v is not None] + [r for r, _ in refs] + [top or 0, 1e-12])
    xs = _scale(0, peak, left, right)
    out = _open("bars", key, width, height, key)
    for i, (label, value) in enumerate(items):
        yy = 14 + i * row
        out.append(f'<text x="{left - 6}" y="{yy + 13}" text-anchor="end" font-size="11">{escape(label)}</text>')
        if value is not None:
            out.append(f'<rect class="bar" data-label="{escape(label, quote=True)}" x="{left}" y="{yy}" '
                       f'width="{max(xs(value) - left, 0.5):.1f}" height="{row - 6}" fill="{_BLUE}"/>'
                       f'<text x="{xs(value) + 4:.1f}" y="{yy + 13}" font-size="10">{escape(fmt(value, 3))}{suffix}</text>')
    for value, label in refs:
        out.append(f'<line class="ref" x1="{xs(value):.1f}" x2="{xs(value):.1f}" y1="8" y2="{height - 14}" '
                   f'stroke="{_RED}" stroke-dasharray="4 3"/><text x="{xs(value):.1f}" y="{height - 3}" '
                   f'text-anchor="middle" font-size="10" fill="{_RED}">{escape(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def band(key: str, mean: float | None, sigma: float | None, old: tuple[float | None, float | None],
         new: tuple[float | None, float | None], unit: str = "", width: int = 640) -> str:
    """Mean ± 3σ of a measurement as a band, the recorded limits (grey) and the new ones (red)."""
    height, left, right = 90, 20, width - 20
    marks = [v for v in (*old, *new) if v is not None]
    if mean is not None and sigma:
        marks += [mean - 3 * sigma, mean + 3 * sigma]
    elif mean is not None:
        marks.append(mean)
    if not marks:
        return ""
    lo, hi, ticks = nice_ticks(min(marks), max(marks), 5)
    xs = _scale(lo, hi, left, right)
    out = _open("band", key, width, height, f"{key}: spread and limits")
    out.append(f'<line x1="{left}" x2="{right}" y1="60" y2="60" stroke="#777"/>')
    for t in ticks:
        out.append(f'<text x="{xs(t):.1f}" y="76" text-anchor="middle" font-size="10">{escape(fmt(t))}</text>')
    if mean is not None and sigma:
        out.append(f'<rect class="spread" x="{xs(mean - 3 * sigma):.1f}" y="30" '
                   f'width="{max(xs(mean + 3 * sigma) - xs(mean - 3 * sigma), 1):.1f}" height="20" '
                   f'fill="{_BLUE}" fill-opacity="0.35"/>')
    if mean is not None:
        out.append(f'<line class="mean" x1="{xs(mean):.1f}" x2="{xs(mean):.1f}" y1="26" y2="54" stroke="{_BLUE}"/>')
    for (value, label, cls, colour, yy) in ((old[0], "LSL", "old-limit", _GREY, 22), (old[1], "USL", "old-limit", _GREY, 22),
                                            (new[0], "new LSL", "new-limit", _RED, 12), (new[1], "new USL", "new-limit", _RED, 12)):
        if value is not None:
            out.append(f'<line class="{cls}" x1="{xs(value):.1f}" x2="{xs(value):.1f}" y1="{yy}" y2="60" '
                       f'stroke="{colour}" stroke-width="2"/><text x="{xs(value):.1f}" y="{yy - 2}" '
                       f'text-anchor="middle" font-size="10" fill="{colour}">{label}</text>')
    out.append(f'<text x="{right}" y="88" text-anchor="end" font-size="10">{escape(unit)}</text></svg>')
    return "\n".join(out)
