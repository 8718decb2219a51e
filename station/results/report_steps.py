"""The steps table of the HTML report, and the list of what failed that heads the page."""

from __future__ import annotations

from html import escape
from typing import Any

from .record import SHOWN_DIGITS, format_duration, format_limits, format_margin, format_quantity


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _wbr(value: Any) -> str:
    """Escaped, with a line-break opportunity after each ``/`` and ``.`` (paths, action names)."""
    return _e(value).replace("/", "/<wbr>").replace(".", ".<wbr>")


def _plot_links(record: dict[str, Any], step: dict[str, Any]) -> str:
    return "".join(f'<a class="plot-link" href="#plot-{i}">plot: {_e(x["name"])}</a>'
                   for i, x in enumerate(record["series"])
                   if x["path"] == step["path"] and x["attempt"] == step["attempt"])


def steps_table(record: dict[str, Any]) -> str:
    """Every step attempt with its measurements against their limits, in run order."""
    head = "".join(f"<th>{h}</th>" for h in ("Step / measurement", "Phase", "Action", "Outcome",
                                             "Value", "Limits", "Margin", "Duration", "UTC"))
    rows = []
    for n, s in enumerate(record["steps"]):
        outcome = s["outcome"] or "unfinished"
        attempt = f" (attempt {s['attempt']})" if s["attempt"] != 1 else ""
        duration = format_duration(s["duration_s"])
        rows.append(f'<tr id="step-{n}" class="step o-{_e(outcome)}"><td class="mono path">'
                    f'{_wbr(s["path"])}{attempt}{_step_name(s)}{_plot_links(record, s)}</td>'
                    f'<td>{_e(s["phase"])}</td><td class="mono action">{_wbr(s["action"])}</td>'
                    f'<td class="o-{_e(outcome)}">{_e(outcome)}</td><td></td><td></td><td></td>'
                    f'<td class="num">{_e(duration)}</td>'
                    f'<td class="num">{_e((s["started_utc"] or "")[11:19])}</td></tr>')
        if s["error"]:
            rows.append(f'<tr class="step-error"><td colspan="9" class="o-error">'
                        f'{_e(s["error"])}</td></tr>')
        rows += [_measurement_row(m) for m in s["measurements"]]
    rows += [_measurement_row(m) for m in record["unassigned_measurements"]]
    return f"<table class=\"steps\"><tr>{head}</tr>{''.join(rows)}</table>"


def _step_name(s: dict[str, Any]) -> str:
    """The plan's human ``name:`` of the step, beside its path (when it says more than the id)."""
    name = s.get("name") or ""
    if not name or name in (s.get("step_id"), s["path"].rsplit("/", 1)[-1]):
        return ""
    return f'<span class="step-name">{_e(name)}</span>'


def _shown(m: dict[str, Any], digits: int = 6) -> str:
    return "(empty)" if m["value"] == "" else format_quantity(m["value"], m["unit"], digits)


def _measurement_row(m: dict[str, Any]) -> str:
    verdict = _e(m["verdict"])
    title = f' title="{_e(m["text"])}"' if m["text"] else ""
    return (f'<tr class="measurement m-{verdict}"{title}><td>{_e(m["name"])}</td><td></td><td></td>'
            f'<td class="m-{verdict}">{verdict}</td>'
            f'<td class="num">{_e(_shown(m, SHOWN_DIGITS))}</td>'
            f'<td class="lim">{_e(format_limits(m["limits"], m["unit"]))}</td>'
            f'<td class="num margin">{_e(format_margin(m["value"], m["limits"], m["unit"]))}</td><td></td>'
            f'<td class="num">{_e((m["utc"] or "")[11:19])}</td></tr>')


def failures(record: dict[str, Any]) -> str:
    """What went wrong, first: failed measurements, failed or errored steps (linked to their
    rows below) and monitor trips; empty when nothing did."""
    items = []
    for n, s in enumerate(record["steps"]):
        bad = [m for m in s["measurements"] if m["verdict"] == "fail"]
        if s["outcome"] not in ("failed", "error", "aborted") and not bad:
            continue
        what = "; ".join(f"{m['name']} = {_shown(m)}, limits "
                         f"{format_limits(m['limits'], m['unit'])}" for m in bad)
        what = what or s["error"] or s["outcome"] or "never finished"
        items.append(f'<li><a href="#step-{n}" class="mono">{_e(s["path"])}</a> '
                     f'<span class="o-{_e(s["outcome"] or "unfinished")}">{_e(s["outcome"])}</span>'
                     f': {_e(what)}{_plot_links(record, s)}</li>')
    items += [f'<li>monitor <span class="mono">{_e(m["path"])}</span> tripped: {_e(m["signal"])}'
              f' = {_e(m["value"])} beyond {_e(m["limit"])}</li>' for m in record["monitor_trips"]]
    if not items:
        return ""
    return f'<div class="failures"><h2>What failed</h2><ul>{"".join(items)}</ul></div>'
