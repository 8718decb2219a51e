"""``station stats`` as plain-text tables (see stats.py for what the figures mean)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .stats import Report


def fmt(value: float | None, digits: int = 4) -> str:
    """A number for tables: ``—`` for none, else ``digits`` significant digits."""
    return "—" if value is None else f"{value:.{digits}g}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def format_text(report: Report) -> str:
    pct = lambda v: "—" if v is None else f"{v:.1f}%"  # noqa: E731
    parts = ["Yield per station / product / day",
             table(["station", "product", "day", "runs", "pass", "yield", "serials", "FPY",
                    "final", "interrupted"],
                   [[g.station, g.product, g.day, str(g.runs), str(g.passed), pct(g.yield_pct),
                     str(g.serials), pct(g.fpy_pct), pct(g.final_pct), str(g.interrupted)]
                    for g in report.yields]),
             "", "Top failing steps (last attempt)",
             table(["step", "failed", "error", "runs"],
                   [[p, str(f), str(e), str(n)] for p, f, e, n in report.top_failing]),
             "", "Measurements",
             table(["step", "measurement", "unit", "n", "mean", "sigma", "LSL", "USL", "Cp",
                    "Cpk", "fails"],
                   [[c.path, c.name, c.unit, str(c.n), fmt(c.mean, 6), fmt(c.sigma), fmt(c.lsl),
                     fmt(c.usl), fmt(c.cp), fmt(c.cpk), str(c.fails)] for c in report.capability])]
    return "\n".join(parts) + "\n"
