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
