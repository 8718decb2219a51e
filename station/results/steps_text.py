"""The steps of one run as rows of text, for ``station results show``.

One row per step attempt (its path, the plan's human ``name:``, outcome, duration) followed by
one row per measurement (value to 4 significant digits, limits, margin to the nearest limit).
Plain output aligns them in columns, one row per line; a terminal gets a table whose value,
limits and margin columns never wrap.
"""

from __future__ import annotations

from typing import Any

from .record import SHOWN_DIGITS, format_duration, format_limits, format_margin, format_quantity

HEAD = ("step / measurement", "name", "outcome", "value", "limits", "margin", "duration")
NOWRAP = frozenset({"outcome", "value", "limits", "margin", "duration"})


def _name(step: dict[str, Any]) -> str:
    name = step.get("name") or ""
    return "" if name in (step.get("step_id"), step["path"].rsplit("/", 1)[-1]) else name


def _measurement(m: dict[str, Any]) -> tuple[str, ...]:
    value = "(empty)" if m["value"] == "" else format_quantity(m["value"], m["unit"], SHOWN_DIGITS)
    return (f"  {m['name']}", "", m["verdict"] or "", value, format_limits(m["limits"], m["unit"]),
            format_margin(m["value"], m["limits"], m["unit"]), "")


def step_rows(record: dict[str, Any]) -> list[tuple[str, ...]]:
    """Rows of ``HEAD``'s columns for every step attempt and its measurements, in run order."""
    rows: list[tuple[str, ...]] = []
    for s in record["steps"]:
        attempt = f" (attempt {s['attempt']})" if s["attempt"] != 1 else ""
        rows.append((s["path"] + attempt, _name(s), s["outcome"] or "unfinished", "", "", "",
                     format_duration(s["duration_s"])))
        rows += [_measurement(m) for m in s["measurements"]]
    rows += [_measurement(m) for m in record["unassigned_measurements"]]
    return rows


def plain_lines(rows: list[tuple[str, ...]]) -> list[str]:
    """``rows`` under ``HEAD`` in aligned columns (empty trailing columns dropped)."""
    table = [HEAD, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEAD))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in table]
