"""JUnit XML for CI: one ``<testcase>`` per step (its final attempt), classname = plan id.

Failed steps carry ``<failure>`` naming each out-of-limit measurement with its value and
limits; error/aborted/unfinished steps carry ``<error>`` with the error text; skipped steps
``<skipped/>``. For the engineer reading it in CI: the step's human ``name:`` heads its messages
and its ``system-out`` (the testcase name stays the path, the stable id CI tracks), values are
shown to 4 significant digits (the failure body keeps them exact), each measurement has its
margin to the nearest limit, and a limit's words are joined by no-break spaces so a CI page
never wraps inside one. Run facts (serial, plan sha256, verdict, ...) are suite properties. If the run
verdict is not PASS but no step shows why (a monitor trip between steps, an interrupted
run), one extra testcase named ``(run verdict)`` fails so CI cannot go green by mistake.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from .record import (
    SHOWN_DIGITS,
    display_verdict,
    final_steps,
    format_duration,
    format_limits,
    format_margin,
    format_quantity,
    write_text_atomic,
)

_XML_INVALID = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
RUN_CASE = "(run verdict)"


def _x(value: Any) -> str:
    """Text XML 1.0 can carry (scanner input may hold control characters)."""
    return _XML_INVALID.sub("\ufffd", "" if value is None else str(value))


def _seconds(value: float | None) -> str:
    return f"{value or 0.0:.3f}"


def _human_name(step: dict[str, Any]) -> str:
    """The plan's ``name:`` of the step, or "" where it says no more than the path's last part."""
    name = step.get("name") or ""
    return "" if name in (step.get("step_id"), step["path"].rsplit("/", 1)[-1]) else name


def _titled(step: dict[str, Any], text: str) -> str:
    """``text`` headed by the step's human name, if it has one."""
    name = _human_name(step)
    return f"{name}: {text}" if name else text


def _measured(m: dict[str, Any]) -> str:
    """``resistance = 142 mΩ, limits ≤ 100 mΩ (42 mΩ beyond max)``, rounded for reading."""
    shown = "(empty)" if m["value"] == "" else format_quantity(m["value"], m["unit"], SHOWN_DIGITS)
    found = format_margin(m["value"], m["limits"], m["unit"])
    limits = format_limits(m["limits"], m["unit"], nowrap=True)
    return (f"{m['name']} = {shown}" + (f", limits {limits}" if limits != "—" else "")
            + (f" ({found})" if found else ""))


def _failure_text(step: dict[str, Any]) -> tuple[str, str]:
    """Short message and detailed body for a failed step."""
    bad = [m for m in step["measurements"] if m["verdict"] == "fail"]
    if not bad:
        return _titled(step, f"step {step['path']} failed"), step["error"] or "no failed measurement recorded"
    message = _titled(step, "; ".join(_measured(m) for m in bad))
    body = "\n".join(f"{m['name']}: value {json.dumps(m['value'], default=str)} {m['unit']}, "
                     f"limits {json.dumps(m['limits'], default=str)} {m['unit']}"
                     f"{' — ' + m['text'] if m['text'] else ''}" for m in bad)
    return message, body


def _testcase(suite: ET.Element, plan_id: str, step: dict[str, Any],
              earlier: list[dict[str, Any]]) -> str:
    case = ET.SubElement(suite, "testcase", classname=_x(plan_id), name=_x(step["path"]),
                         time=_seconds(step["duration_s"]))
    outcome = step["outcome"]
    if outcome == "failed":
        message, body = _failure_text(step)
        ET.SubElement(case, "failure", message=_x(message), type="MeasurementFailed").text = \
            _x(body)
    elif outcome in ("error", "aborted") or outcome is None:
        text = step["error"] or ("step never finished" if outcome is None else f"step {outcome}")
        ET.SubElement(case, "error", message=_x(_titled(step, text.splitlines()[0] if text else text)),
                      type=_x(outcome or "unfinished")).text = _x(text)
    elif outcome == "skipped":
        ET.SubElement(case, "skipped", message=_x(step["error"] or "skipped"))
    if _human_name(step):  # for CI tools that show testcase properties
        ET.SubElement(ET.SubElement(case, "properties"), "property", name="name", value=_x(_human_name(step)))
    head = _titled(step, f"{step['path']}, {outcome or 'unfinished'}")
    duration = format_duration(step["duration_s"])
    lines = [head + (f" in {duration}" if duration else "")]
    lines += [f"  {m['verdict']:<4} {_measured(m)}" for m in step["measurements"]]
    lines += [f"earlier attempt {s['attempt']}: {s['outcome']} {s['error'] or ''}".rstrip()
              for s in earlier]
    ET.SubElement(case, "system-out").text = _x("\n".join(lines))
    return {"failed": "failures", "skipped": "skipped", "passed": "passed"}.get(
        outcome or "", "errors")


def render_junit(record: dict[str, Any]) -> str:
    """The JUnit XML document as a string."""
    plan_id = record["plan"]["id"] or "plan"
    verdict = display_verdict(record)
    root = ET.Element("testsuites", name=_x(plan_id))
    suite = ET.SubElement(root, "testsuite", name=_x(plan_id),
                          timestamp=_x((record["started_utc"] or "")[:19]),
                          hostname=_x(record["station_id"] or "station"))
    props = ET.SubElement(suite, "properties")
    for name, value in (("serial", record["serial"]), ("run_id", record["run_id"]),
                        ("plan_id", plan_id), ("plan_version", record["plan"]["version"]),
                        ("plan_sha256", record["plan"]["sha256"]),
                        ("variant", record["variant"]), ("station_id", record["station_id"]),
                        ("fixture_id", record["fixture_id"]), ("operator", record["operator"]),
                        ("software_version", record["software_version"]),
                        ("simulated", record["simulated"]), ("status", record["status"]),
                        ("verdict", verdict), ("reason", record["reason"]),
                        ("mes_transaction_id", record.get("mes_transaction_id"))):
        ET.SubElement(props, "property", name=name, value=_x(value))
    if record.get("sim_pack"):  # the pack model a simulated run ran against
        ET.SubElement(props, "property", name="sim_pack", value=_x(record["sim_pack"]["name"]))
        ET.SubElement(props, "property", name="sim_pack_sha256", value=_x(record["sim_pack"]["sha256"]))
    counts = {"failures": 0, "errors": 0, "skipped": 0, "passed": 0}
    finals = final_steps(record)
    for step in finals:
        earlier = [s for s in record["steps"] if s["path"] == step["path"] and s is not step]
        counts[_testcase(suite, plan_id, step, earlier)] += 1
    if verdict != "PASS" and counts["failures"] + counts["errors"] == 0:
        case = ET.SubElement(suite, "testcase", classname=_x(plan_id), name=RUN_CASE,
                             time=_seconds(record["duration_s"]))
        text = record["reason"] or "; ".join(e["message"] for e in record["errors"]) or verdict
        kind = "failure" if verdict == "FAIL" else "error"
        ET.SubElement(case, kind, message=_x(f"run {verdict}: {text}"), type=verdict).text = \
            _x(text)
        counts["failures" if kind == "failure" else "errors"] += 1
    tests = sum(counts.values())
    total = record["duration_s"]
    if total is None:
        total = sum(s["duration_s"] or 0.0 for s in finals)
    for el in (root, suite):
        el.set("tests", str(tests))
        el.set("failures", str(counts["failures"]))
        el.set("errors", str(counts["errors"]))
        el.set("skipped", str(counts["skipped"]))
        el.set("time", _seconds(total))
    if record["errors"]:
        ET.SubElement(suite, "system-err").text = _x("\n".join(
            f"[{e['source']}] {e['where']}: {e['message']}" for e in record["errors"]))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(record: dict[str, Any], path: str | Path) -> Path:
    """Write the JUnit XML report; returns the path."""
    return write_text_atomic(path, render_junit(record))
