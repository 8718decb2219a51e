"""``station stats`` as plain-text tables (see stats.py for what the figures mean)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .stats import Report


def fmt(value: float | None, digits: int = 4) -> str:
    """A number for tables: ``—`` for none, else ``digits`` significant digits."""
    return "—" if value is None else f"{value:.{digits}g}"


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def rows_of(report: Report) -> dict[str, tuple[list[str], list[list[str]]]]:
    """Every table as (headers, rows of text cells); shared by text, HTML and CSV."""
    keys = report.keys
    return {
        "yield": (keys + ["day", "runs", "pass", "yield", "serials", "FPY", "final", "interrupted"],
                  [[*g.group, g.day, str(g.runs), str(g.passed), pct(g.yield_pct), str(g.serials),
                    pct(g.fpy_pct), pct(g.final_pct), str(g.interrupted)] for g in report.yields]),
        "failing": (keys + ["step", "failed", "error", "runs"],
                    [[*grp, p, str(f), str(e), str(n)] for grp, p, f, e, n in report.top_failing]),
        "capability": (keys + ["step", "measurement", "unit", "n", "mean", "sigma", "LSL", "USL",
                               "Cp", "Cpk", "fails"],
                       [[*c.group, c.path, c.name, c.unit, str(c.n), fmt(c.mean, 6), fmt(c.sigma),
                         fmt(c.lsl), fmt(c.usl), fmt(c.cp), fmt(c.cpk), str(c.fails)]
                        for c in report.capability]),
    }


def format_text(report: Report) -> str:
    tables = rows_of(report)
    parts = [report.population.describe(), ""]
    if report.outside:
        parts += [f"No run matches. {report.outside} runs of these days are not in the population "
                  "(development, simulated, fault-injected, interrupted, or another station/product): "
                  "see --include-development, --include-simulated, --include-faults, "
                  "--include-interrupted.", ""]
    parts += [
             "Yield per population / day", table(*tables["yield"]),
             "", "Top failing steps (last attempt)", table(*tables["failing"]),
             "", "Measurements", table(*tables["capability"])]
    return "\n".join(parts) + "\n"
