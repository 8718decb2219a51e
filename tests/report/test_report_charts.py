"""The report's charts and value formatting without a browser: cases the reference run cannot show
(a curve recorded late, a spread band with an outlier) and the units the plan language scales."""

from __future__ import annotations

import re

import pytest

from station.results.record import format_limits, format_quantity
from station.results.svg import Mark, line_chart
from station.results.svg_cells import cell_chart, spread_window
from tests.report.helpers import parse


def test_time_axis_starts_when_the_action_started_so_a_late_curve_shows_its_gap():
    rows = [[0.05 + 0.01 * i, 400 * (1 - 0.9**i)] for i in range(20)]  # first sample 50 ms late
    svg = parse(line_chart("precharge", ["t_s", "bus_voltage_V"], rows))
    frame = svg.find_all("rect", cls="axis")[0].attrs
    assert float(frame["data-x-lo"]) == 0.0
    first_x = float(re.match(r"M(-?[\d.]+)", svg.find_all("path", cls="line")[0].attrs["d"]).group(1))
    assert first_x - float(frame["x"]) > 0.1 * float(frame["width"])  # 50 ms of 0.25 s: a visible gap


def test_marks_widen_the_axis_to_show_the_margin_and_far_ones_are_labelled():
    rows = [[0.01 * i, 10.0 * i] for i in range(27)]
    chart = line_chart("precharge", ["t_s", "bus_voltage_V"], rows,
                       marks=[Mark("t_s", 0.3, "precharge_time ≤ 300 ms", "limit", "max"),
                              Mark("bus_voltage_V", 5000.0, "bus ≤ 5 kV", "limit", "max")])
    svg = parse(chart)
    assert float(svg.find_all("rect", cls="axis")[0].attrs["data-x-hi"]) >= 0.3
    (line,) = svg.find_all("line", cls="limit-max")
    assert float(line.attrs["data-value"]) == 0.3 and line.attrs["data-column"] == "t_s"
    assert "bus ≤ 5 kV ↑ (off scale)" in svg.all_text()  # 5 kV over 260 V data: named, not drawn


def test_spread_band_holds_the_most_cells_so_the_outlier_is_the_one_flagged():
    volts = [3.720 + 0.001 * (i % 7) for i in range(95)] + [3.672]
    low, high, inside = spread_window(volts, 0.030)
    assert inside == 95 and high - low == pytest.approx(0.030) and not low <= 3.672 <= high
    svg = parse(cell_chart("cell_voltages", range(1, 97), volts, low=3.0, high=4.2, spread=0.030))
    flagged = svg.find_all("circle", cls="over-spread")
    assert len(flagged) == 1 and "cell 96: 3.6720 V" in flagged[0].all_text()
    assert "cell 96: 3.6720 V" in [t.all_text() for t in svg.find_all("text", cls="outlier")]
    # 3.0 V and 4.2 V would squash 6 mV of cells into a line: they go on the gauge, with values
    assert {float(n.attrs["data-value"]) for n in svg.find_all("line", cls="gauge-limit")} == {3.0, 4.2}
    passing = spread_window(volts[:95], 0.030)
    assert passing[2] == 95 and passing[0] <= min(volts[:95]) and max(volts[:95]) <= passing[1]


def test_values_read_as_the_plan_wrote_them():
    # records hold values in the unit they name (record schema 2): shown as they are
    assert format_quantity(30.0, "%") == "30 %"
    assert format_quantity(-41.9462, "Ah") == "-41.9462 Ah"
    assert format_limits({"unit": "%", "min": 25.0, "max": 30.0}, "%") == "≥ 25 %, ≤ 30 %"
    assert format_limits({"unit": "V", "max": 0.03}, "V") == "≤ 30 mV"  # "unit" is not a limit
    assert format_limits({"unit": "V"}, "V") == "—"
    assert format_quantity(True, "bool") == "true" and format_quantity("B1", "str") == "B1"
