"""``station stats --format``: text, HTML, CSV (one table) or JSON (everything, numbers as numbers)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from station.results.record import write_text_atomic

from .stats_text import format_text

if TYPE_CHECKING:
    from .stats import Report


def as_json(report: Report) -> dict[str, Any]:
    keys = report.keys
    grp = lambda g: dict(zip(keys, g))  # noqa: E731
    return {
        "population": report.population.describe(),
        "yield": [{**grp(y.group), "day": y.day, "runs": y.runs, "passed": y.passed,
                   "yield_pct": y.yield_pct, "interrupted": y.interrupted, "serials": y.serials,
                   "first_pass": y.first_pass, "fpy_pct": y.fpy_pct, "final_pass": y.final_pass,
                   "final_pct": y.final_pct} for y in report.yields],
        "top_failing": [{**grp(g), "step": p, "failed": f, "errored": e, "runs": n}
                        for g, p, f, e, n in report.top_failing],
        "capability": [{**grp(c.group), "step": c.path, "measurement": c.name, "unit": c.unit,
                        "lsl": c.lsl, "usl": c.usl, "n": c.n, "mean": c.mean, "sigma": c.sigma,
                        "cp": c.cp, "cpk": c.cpk, "fails": c.fails, "min": c.low, "max": c.high}
                       for c in report.capability],
    }


def as_csv(report: Report, table: str) -> str:
    data = as_json(report)[{"yield": "yield", "failing": "top_failing",
                            "capability": "capability"}[table]]
    buf = io.StringIO()
    if data:
        writer = csv.DictWriter(buf, fieldnames=list(data[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else repr(v) if isinstance(v, float) else v)
                          for k, v in row.items()} for row in data)
    return buf.getvalue()


def emit(report: Report, fmt: str, out: TextIO, *, output: str | None = None, source: str = "",
         table: str = "capability") -> None:
    """Write ``report`` as ``fmt`` to ``output`` (atomically) or ``out``."""
    if fmt == "html":
        from .stats_html import render

        text = render(report, source=source)
    elif fmt == "json":
        text = json.dumps(as_json(report), indent=1, allow_nan=False) + "\n"
    elif fmt == "csv":
        text = as_csv(report, table)
    else:
        text = format_text(report)
    if output:
        write_text_atomic(Path(output), text)
    else:
        out.write(text)
