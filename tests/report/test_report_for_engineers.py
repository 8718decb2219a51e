"""Reports for engineers (issue 18 item 8): step names beside paths, durations and values at a
readable resolution, the margin to the nearest limit, limits that do not wrap."""

from __future__ import annotations

import pytest

from station.results.record import format_duration, margin
from station.results.report_steps import steps_table


def test_durations_at_their_resolution():
    assert format_duration(0.04213) == "42 ms"
    assert format_duration(12.3456) == "12.3 s"
    assert format_duration(754.2) == "12 min 34 s"
    assert format_duration(None) == ""


def test_margin_to_the_nearest_limit():
    assert margin(0.042, {"max": 0.1}) == (pytest.approx(0.058), "max", None)
    distance, which, share = margin(3.9, {"min": 3.0, "max": 4.0})
    assert (which, round(distance, 9), round(share, 9)) == ("max", 0.1, 0.1)
    assert margin(5.0, {"min": 6.0})[0] == -1.0  # outside: negative
    assert margin("x", {"max": 1}) is None and margin(1.0, {"equals": 1}) is None


def _record():
    step = {"path": "main/bond[BP1]/bond_r", "step_id": "bond_r", "name": "Ground bond BP1",
            "action": "safety.ground_bond", "phase": "main", "attempt": 1, "outcome": "passed",
            "started_utc": "2026-01-01T10:00:00Z", "duration_s": 2.0412, "error": None,
            "measurements": [{"name": "resistance", "value": 0.0421234567, "unit": "ohm",
                              "limits": {"unit": "mOhm", "max": 0.1}, "verdict": "pass",
                              "text": "42.1235 mOhm [-inf, 100 mOhm] PASS", "utc": "2026-01-01T10:00:02Z"}]}
    return {"steps": [step], "series": [], "unassigned_measurements": []}


def test_steps_table_shows_name_rounded_value_margin_and_unwrapped_limits():
    html = steps_table(_record())
    assert '<span class="step-name">Ground bond BP1</span>' in html
    assert "42.12 mΩ" in html and "42.1235" not in html.split("title=")[0]
    assert "57.9 mΩ to max" in html
    assert '<td class="lim">≤ 100 mΩ</td>' in html
    assert "2.0 s" in html and "2.0412" not in html


def _failing_record():
    record = _record()
    step = record["steps"][0]
    step["measurements"][0].update(value=0.1421234, verdict="fail")
    step["outcome"] = "failed"
    record.update(plan={"id": "pack-eol", "version": "1", "sha256": "0" * 64}, started_utc="2026-01-01T10:00:00Z",
                  station_id="S", serial="SN1", run_id="r1", variant="car-400", fixture_id="F1", operator="",
                  software_version="x", simulated=True, status="finished", verdict="FAIL", reason="",
                  duration_s=3.0, errors=[], summary={"steps": {"failed": 1}}, monitor_trips=[])
    return record


def test_margin_says_beyond_when_outside():
    from station.results.record import format_margin

    assert format_margin(0.1421234, {"max": 0.1}, "ohm") == "42.1 mΩ beyond max"
    assert format_margin(3.9, {"min": 3.0, "max": 4.0}, "V") == "100 mV to max (10 %)"
    assert format_margin("x", {"max": 1}, "") == ""


def test_junit_names_rounds_gives_margin_and_unbreakable_limits():
    import xml.etree.ElementTree as ET

    from station.results.junit import render_junit

    case = ET.fromstring(render_junit(_failing_record()).split("\n", 1)[1]).find(".//testcase")
    assert case.get("name") == "main/bond[BP1]/bond_r"  # the stable id CI tracks stays the path
    assert case.find("failure").get("message") == \
        "Ground bond BP1: resistance = 142.1 mΩ, limits ≤\u00a0100\u00a0mΩ (42.1 mΩ beyond max)"
    assert "0.1421234" in case.find("failure").text  # the body keeps the exact value
    out = case.find("system-out").text.splitlines()
    assert out[0] == "Ground bond BP1: main/bond[BP1]/bond_r, failed in 2.0 s"
    assert out[1].startswith("  fail resistance = 142.1 mΩ")
    assert {p.get("name"): p.get("value") for p in case.iter("property")} == {"name": "Ground bond BP1"}


def test_results_show_lists_every_step_with_name_rounded_value_margin_and_limits():
    from station.results.steps_text import plain_lines, step_rows

    lines = plain_lines(step_rows(_record()))
    assert lines[0].split() == ["step", "/", "measurement", "name", "outcome", "value", "limits", "margin", "duration"]
    step, meas = lines[1], lines[2]
    assert step.startswith("main/bond[BP1]/bond_r") and "Ground bond BP1" in step and step.endswith("2.0 s")
    assert meas.startswith("  resistance") and "42.12 mΩ" in meas and "42.1235" not in meas
    assert "≤ 100 mΩ" in meas and "57.9 mΩ to max" in meas
    assert len({line.index("limits") if i == 0 else None for i, line in enumerate(lines)} - {None}) == 1
    limit_col = lines[0].index("limits")
    assert meas[limit_col:].startswith("≤ 100 mΩ")  # aligned under its heading, on one line
