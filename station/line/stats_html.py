"""``station stats --html``: the statistics as one self-contained HTML page.

Tables as in the text output, and per measurement an inline-SVG trend plot (the newest values
in time order, with mean and the LSL/USL lines). No scripts, no fonts, no network. Every plot is
``<svg class="trend" data-measurement="GROUP… PATH NAME">`` so tests can find it.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from station.results.record import unit_symbol, write_text_atomic
from station.results.svg import nice_ticks

from .stats import Capability, Report
from .stats_text import fmt, rows_of

_CSS = """body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;
margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}h2{margin-top:1.5em}.low{background:#fdd}"""


def trend_svg(cap: Capability, *, width: int = 640, height: int = 180) -> str:
    """Values in time order (x = sample number) with mean and limit lines."""
    ys = [v for _, v in cap.trend]
    if not ys:
        return ""
    marks = [v for v in (cap.lsl, cap.usl, cap.mean) if v is not None]
    lo, hi, ticks = nice_ticks(min(ys + marks), max(ys + marks), 4)
    left, right, top, bottom = 64, width - 12, 12, height - 24
    span = (hi - lo) or 1.0

    def y(v: float) -> float:
        return bottom - (v - lo) / span * (bottom - top)

    def x(i: int) -> float:
        return left + (i / max(len(ys) - 1, 1)) * (right - left)

    key = escape(" ".join([*cap.group, cap.path, cap.name]), quote=True)
    out = [f'<svg class="trend" data-measurement="{key}" xmlns="http://www.w3.org/2000/svg" '
           f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
           f"<title>{key} trend</title>",
           f'<rect x="{left}" y="{top}" width="{right - left}" height="{bottom - top}" '
           f'fill="none" stroke="#777"/>']
    for t in ticks:
        out.append(f'<text x="{left - 4}" y="{y(t) + 4:.1f}" text-anchor="end" font-size="10">'
                   f"{escape(fmt(t))}</text>")
    for value, label, colour in ((cap.lsl, "LSL", "#c0392b"), (cap.usl, "USL", "#c0392b"),
                                 (cap.mean, "mean", "#2e8b57")):
        if value is not None:
            out.append(f'<line class="{label.lower()}" x1="{left}" x2="{right}" '
                       f'y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="{colour}" '
                       f'stroke-dasharray="4 3"/>'
                       f'<text x="{right - 2}" y="{y(value) - 3:.1f}" text-anchor="end" '
                       f'font-size="10" fill="{colour}">{label}</text>')
    points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(ys))
    out.append(f'<polyline class="values" points="{points}" fill="none" stroke="#1f6fb2"/>')
    out.extend(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2" fill="#1f6fb2"/>'
               for i, v in enumerate(ys) if len(ys) <= 500)
    out.append(f'<text x="{(left + right) / 2}" y="{height - 6}" text-anchor="middle" '
               f'font-size="10">run (time order), {escape(unit_symbol(cap.unit))}</text></svg>')
    return "\n".join(out)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render(report: Report, *, source: str = "") -> str:
    tables = rows_of(report)
    parts = ["<!DOCTYPE html><html><head><meta charset=\"utf-8\">",
             f"<title>Line statistics</title><style>{_CSS}</style></head><body>",
             f"<h1>Line statistics</h1><p>{escape(source)}</p>",
             f"<p>{escape(report.population.describe())}</p><h2>Yield</h2>",
             _table(*tables["yield"]), "<h2>Top failing steps</h2>", _table(*tables["failing"]),
             "<h2>Measurements</h2>"]
    for c in report.capability:
        parts.append(f"<h3>{escape(' / '.join(g for g in c.group if g))} · {escape(c.path)} · "
                     f"{escape(c.name)}</h3>")
        parts.append(_table(["n", "mean", "σ", "LSL", "USL", "Cp", "Cpk", "fails"],
                            [[str(c.n), fmt(c.mean, 6), fmt(c.sigma), fmt(c.lsl), fmt(c.usl),
                              fmt(c.cp), fmt(c.cpk), str(c.fails)]]))
        parts.append(trend_svg(c))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_html(report: Report, path: str | Path, *, source: str = "") -> Path:
    return write_text_atomic(path, render(report, source=source))
