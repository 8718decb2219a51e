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

from .record import display_verdict, format_quantity, to_jsonable, write_text_atomic
from .report_plots import plots_section
from .report_steps import failures, steps_table

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
td.path,td.action{word-break:normal;overflow-wrap:break-word}
td.lim{white-space:nowrap}
.step-name{display:block;font-family:system-ui,sans-serif;font-weight:400;color:#444}
figure{margin:12px 0 24px;padding:4px 8px;border-left:4px solid transparent}
figure.failed{border-left-color:#c0392b;background:#fdf3f2}
figcaption{color:#555;font-size:12px}figcaption ul{margin:2px 0;padding-left:18px}
figcaption .lim{color:#777}
svg.plot{max-width:100%;height:auto;background:#fff}
.failures{border:2px solid #c0392b;border-radius:6px;padding:4px 12px;margin:0 0 16px}
.failures h2{color:#c0392b;margin:6px 0}
a.plot-link{display:block;font:400 12px system-ui,sans-serif}
.banner .sim{font-size:14px;font-weight:700;border:2px solid #fff;border-radius:4px;padding:0 6px}
.banner .what{flex-basis:100%;font-size:14px;opacity:.92}
footer{color:#888;font-size:12px;margin:24px 0}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    shown = format_quantity(seconds, "s")
    return shown if seconds < 60 else f"{shown} ({int(seconds // 60)} min {seconds % 60:02.0f} s)"


def _banner(record: dict[str, Any], verdict: str) -> str:
    """Verdict, serial and reason; below, what ran and how much of it passed."""
    plan, summary = record["plan"], record["summary"]
    counts = [", ".join(f"{n} {k}" for k, n in summary[part].items()) or "none"
              for part in ("steps", "measurements")]
    sim = '<span class="sim">SIMULATED</span>' if record["simulated"] else ""
    what = (f"{plan['id']} {plan['version']} · {record['variant'] or 'no variant'} · "
            f"steps: {counts[0]} · measurements: {counts[1]} · {_duration(record['duration_s'])}")
    return (f'<div class="banner v-{verdict.lower()}"><span class="verdict">{_e(verdict)}</span>'
            f'<span class="serial">{_e(record["serial"])}</span>{sim}'
            f'<span class="reason">{_e(record["reason"] or "")}</span>'
            f'<span class="what">{_e(what)}</span></div>')


def _nav(record: dict[str, Any]) -> str:
    links = [("steps", "Steps and measurements"), ("errors", "Errors" if record["errors"] else ""),
             ("safe-state", "Safe state" if record["safe_state"] else ""),
             ("plots", f"Plots ({len(record['series'])})" if record["series"] else "")]
    return '<p class="nav">' + " · ".join(f'<a href="#{a}">{t}</a>' for a, t in links if t) + "</p>"


def _facts(record: dict[str, Any]) -> str:
    plan = record["plan"]
    rows = [
        ("Serial", record["serial"]), ("Plan", f"{plan['id']} {plan['version']} — {plan['title']}"),
        ("Plan file", plan["path"]), ("Plan sha256", plan["sha256"]),
        ("Variant", record["variant"]), ("Station", record["station_id"]),
        ("Fixture", record["fixture_id"]),
        ("Operator", record["operator"] or "— (none given: anonymous bench run)"),
        ("Started (UTC)", record["started_utc"]),
        ("Finished (UTC)", record["finished_utc"] or f"— (last event {record['last_event_utc']})"),
        ("Duration", _duration(record["duration_s"])),
        ("Status", record["status"]), ("Reason", record["reason"] or "—"),
        ("Software", record["software_version"]),
        ("Simulated", {True: "yes", False: "no"}.get(record["simulated"], "—")),
        *([("Simulated pack", f"{pack['name']} (sha256 {pack['sha256']})")] if (pack := record.get("sim_pack")) else []),
        ("MES transaction", record.get("mes_transaction_id") or "—"),
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


def _list_table(title: str, head: tuple[str, ...], rows: list[tuple]) -> str:
    if not rows:
        return ""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return (f'<h2 id="{_e(title.lower().replace(" ", "-"))}">{_e(title)}</h2>'
            f"<table><tr>{th}</tr>{body}</table>")


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
        _banner(record, verdict), _nav(record),
        failures(record), _facts(record), "<h2>Instruments</h2>", _instruments(record),
        _list_table("Parameters", ("Name", "Value"), params),
        f'<h2 id="steps">Steps and measurements</h2><p>{_e(summary)}</p>', steps_table(record),
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
        plots_section(record),
        f"<footer>record schema {record['record_schema_version']} · run {_e(record['run_id'])}"
        "</footer></body></html>",
    ]
    return "\n".join(p for p in parts if p)


def write_html(record: dict[str, Any], path: str | Path) -> Path:
    """Write the self-contained HTML report; returns the path."""
    return write_text_atomic(path, render_html(record))
