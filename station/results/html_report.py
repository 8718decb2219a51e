"""The HTML report: one self-contained file (inline CSS and SVG, no scripts, no network).

Reads top to bottom the way a failure analyst asks: verdict, which pack and plan, which
instruments (calibration), every step and measurement against its limits, what went wrong,
what the safe state did, then plots of every recorded series.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from . import svg
from .record import (display_verdict, format_limits, format_quantity, iter_measurements,
                     to_jsonable, write_text_atomic)

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:0 16px;color:#222}
.banner{color:#fff;padding:18px 24px;margin:16px 0;border-radius:6px;display:flex;
  align-items:baseline;gap:24px;flex-wrap:wrap}
.banner .verdict{font-size:56px;font-weight:800;letter-spacing:2px}
.banner .serial{font-size:22px;font-family:monospace}
.v-pass{background:#1e8449}.v-fail{background:#c0392b}.v-error{background:#d35400}
.v-aborted{background:#6c3483}.v-interrupted{background:#7f8c8d}.v-running{background:#2471a3}
table{border-collapse:collapse;width:100%;margin:8px 0 20px}
th,td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}
table.facts th{width:180px;background:none;color:#555;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.step td{border-top:2px solid #bbb;font-weight:600}
tr.measurement td:first-child{padding-left:28px}
.o-passed,.m-pass{color:#1e8449}.o-failed,.m-fail{color:#c0392b;font-weight:700}
.o-error,.o-aborted,.o-unfinished{color:#d35400;font-weight:700}.o-skipped{color:#888}
.m-marginal{color:#b7950b;font-weight:700}
tr.m-fail{background:#fdecea}tr.m-marginal{background:#fef9e7}
.overdue{color:#c0392b;font-weight:700}
code,.mono{font-family:monospace;word-break:break-all}
figure{margin:12px 0 24px}figcaption{color:#555;font-size:12px}
svg.plot{max-width:100%;height:auto;background:#fff}
footer{color:#888;font-size:12px;margin:24px 0}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _facts(record: dict[str, Any]) -> str:
    plan = record["plan"]
    rows = [
        ("Serial", record["serial"]), ("Plan", f"{plan['id']} {plan['version']} — {plan['title']}"),
        ("Plan file", plan["path"]), ("Plan sha256", plan["sha256"]),
        ("Variant", record["variant"]), ("Station", record["station_id"]),
        ("Fixture", record["fixture_id"]), ("Operator", record["operator"]),
        ("Started (UTC)", record["started_utc"]),
        ("Finished (UTC)", record["finished_utc"] or f"— (last event {record['last_event_utc']})"),
        ("Duration", format_quantity(record["duration_s"], "s") if record["duration_s"] is not None
         else "—"),
        ("Status", record["status"]), ("Reason", record["reason"]),
        ("Software", record["software_version"]),
        ("Simulated", {True: "yes", False: "no"}.get(record["simulated"], "—")),
        ("Faults injected", ", ".join(record["faults"]) or "none"), ("Run id", record["run_id"]),
    ]
    body = "".join(f"<tr><th>{_e(k)}</th><td class=\"mono\">{_e(v)}</td></tr>" for k, v in rows)
    return f'<table class="facts">{body}</table>'


def _instruments(record: dict[str, Any]) -> str:
    run_day = (record["started_utc"] or "")[:10]
    rows = []
    for i in record["instruments"]:
        due = i["calibration_due"]
        overdue = bool(due and run_day and due[:10] < run_day)
        rows.append("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in (
            i["role"], i["driver"], i["maker"], i["model"], i["serial"], i["firmware"]))
            + f'<td class="{"overdue" if overdue else ""}">{_e(due or "—")}'
            f'{" (overdue)" if overdue else ""}</td><td class="mono">{_e(i["resource"])}</td>'
            f'<td>{"shared" if i["shared"] else ""}</td></tr>')
    head = "".join(f"<th>{h}</th>" for h in ("Role", "Driver", "Maker", "Model", "Serial",
                                             "Firmware", "Calibration due", "Resource", ""))
    return f"<table class=\"instruments\"><tr>{head}</tr>{''.join(rows)}</table>"


def _steps(record: dict[str, Any]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("Step / measurement", "Phase", "Action",
                                             "Outcome", "Value", "Limits", "Time"))
    rows = []
    for s in record["steps"]:
        outcome = s["outcome"] or "unfinished"
        attempt = f" (attempt {s['attempt']})" if s["attempt"] != 1 else ""
        duration = format_quantity(s["duration_s"], "s") if s["duration_s"] is not None else ""
        rows.append(f'<tr class="step o-{_e(outcome)}"><td class="mono">{_e(s["path"])}{attempt}'
                    f'</td><td>{_e(s["phase"])}</td><td class="mono">{_e(s["action"])}</td>'
                    f'<td class="o-{_e(outcome)}">{_e(outcome)}</td><td></td><td></td>'
                    f'<td class="num">{_e(duration)}</td></tr>')
        if s["error"]:
            rows.append(f'<tr class="step-error"><td colspan="7" class="o-error">'
                        f'{_e(s["error"])}</td></tr>')
        rows += [_measurement_row(m) for m in s["measurements"]]
    rows += [_measurement_row(m) for m in record["unassigned_measurements"]]
    return f"<table class=\"steps\"><tr>{head}</tr>{''.join(rows)}</table>"


def _measurement_row(m: dict[str, Any]) -> str:
    verdict = _e(m["verdict"])
    title = f' title="{_e(m["text"])}"' if m["text"] else ""
    return (f'<tr class="measurement m-{verdict}"{title}><td>{_e(m["name"])}</td><td></td><td></td>'
            f'<td class="m-{verdict}">{verdict}</td>'
            f'<td class="num">{_e(format_quantity(m["value"], m["unit"]))}</td>'
            f'<td>{_e(format_limits(m["limits"], m["unit"]))}</td>'
            f'<td class="num">{_e((m["utc"] or "")[11:19])}</td></tr>')


def _list_table(title: str, head: tuple[str, ...], rows: list[tuple]) -> str:
    if not rows:
        return ""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<h2>{_e(title)}</h2><table><tr>{th}</tr>{body}</table>"


def _cell_limits(record: dict[str, Any], series: dict[str, Any]) -> tuple[float | None, ...]:
    """Limits from extra series columns (``min_V``/``max_V``), else from cell measurements."""
    low = high = None
    if series["rows"]:
        for i, col in enumerate(series["columns"][2:], start=2):
            key = col.lower()
            if key.startswith(("min", "low", "limit_min")) and isinstance(series["rows"][0][i],
                                                                          (int, float)):
                low = float(series["rows"][0][i])
            elif key.startswith(("max", "high", "limit_max")) and isinstance(
                    series["rows"][0][i], (int, float)):
                high = float(series["rows"][0][i])
    if low is not None or high is not None:
        return low, high
    candidates = [m for m in iter_measurements(record)
                  if m["unit"] == "V" and "cell" in str(m["name"]).lower()]
    same_step = [m for m in candidates if m["path"] == series["path"]]
    for m in same_step or candidates:
        lim = m["limits"] or {}
        if isinstance(lim.get("min"), (int, float)):
            low = max(low, float(lim["min"])) if low is not None else float(lim["min"])
        if isinstance(lim.get("max"), (int, float)):
            high = min(high, float(lim["max"])) if high is not None else float(lim["max"])
    return low, high


def _plots(record: dict[str, Any]) -> str:
    figures = []
    for s in record["series"]:
        caption = f"{s['path']} · {s['name']} · {len(s['rows'])} points"
        if s["name"] == "cell_voltages" and len(s["columns"]) >= 2:
            low, high = _cell_limits(record, s)
            chart = svg.cell_chart(s["name"], [r[0] for r in s["rows"]],
                                   [r[1] for r in s["rows"]], low=low, high=high,
                                   title=f"Cell voltages ({s['path']})")
        else:
            chart = svg.line_chart(s["name"], s["columns"], s["rows"],
                                   title=f"{s['name']} ({s['path']})")
        figures.append(f"<figure>{chart}<figcaption>{_e(caption)}</figcaption></figure>")
    return "<h2>Plots</h2>" + "".join(figures) if figures else ""


def render_html(record: dict[str, Any]) -> str:
    """The report as one HTML string."""
    verdict = display_verdict(record)
    params = [(k, json.dumps(to_jsonable(v), ensure_ascii=False) if not isinstance(v, str) else v)
              for k, v in (record["parameters"] or {}).items()]
    summary = ", ".join(f"{n} {k}" for k, n in record["summary"]["steps"].items())
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(verdict)} {_e(record['serial'])} — {_e(record['plan']['id'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f'<div class="banner v-{verdict.lower()}"><span class="verdict">{_e(verdict)}</span>'
        f'<span class="serial">{_e(record["serial"])}</span>'
        f'<span class="reason">{_e(record["reason"] or "")}</span></div>',
        _facts(record), "<h2>Instruments</h2>", _instruments(record),
        _list_table("Parameters", ("Name", "Value"), params),
        f"<h2>Steps and measurements</h2><p>{_e(summary)}</p>", _steps(record),
        _list_table("Errors", ("Source", "Where", "Message", "UTC"),
                    [(x["source"], x["where"], x["message"], x["utc"]) for x in record["errors"]]),
        _list_table("Safe state", ("Instrument", "Action", "OK", "Error", "UTC"),
                    [(a["instrument"], a["action"], "yes" if a["ok"] else "NO", a["error"] or "",
                      a["utc"]) for a in record["safe_state"]]),
        _list_table("Monitor trips", ("Group", "Signal", "Value", "Limit", "UTC"),
                    [(m["path"], m["signal"], m["value"], m["limit"], m["utc"])
                     for m in record["monitor_trips"]]),
        _list_table("Prompts", ("Step", "Prompt / answer", "UTC"),
                    [(p["path"], p.get("message", p.get("answer")), p["utc"])
                     for p in record["prompts"]]),
        _list_table("Log", ("Level", "Message", "UTC"),
                    [(m["level"], m["message"], m["utc"]) for m in record["log"]]),
        _plots(record),
        f"<footer>record schema {record['record_schema_version']} · run {_e(record['run_id'])}"
        "</footer></body></html>",
    ]
    return "\n".join(p for p in parts if p)


def write_html(record: dict[str, Any], path: str | Path) -> Path:
    """Write the self-contained HTML report; returns the path."""
    return write_text_atomic(path, render_html(record))
