"""What a test engineer reads off the rendered report, checked against the run's own record (JSON):
the plots draw the recorded samples from their start, the limits the step was judged against are
marked on them with those values, axes carry units, failures stand out, the operator is named.
"""

from __future__ import annotations

import itertools
import json
import re
import statistics

import pytest

from station.results.record import format_limits, format_quantity
from station.results.svg import split_unit
from tests.report.conftest import OPERATOR
from tests.report.helpers import HAVE_CHROMIUM, NO_CHROMIUM, Node, rendered_tree

pytestmark = [pytest.mark.skipif(not HAVE_CHROMIUM, reason=NO_CHROMIUM), pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def run(reports):
    return json.loads(reports["json"].read_text()), rendered_tree(reports["tmp"], reports["run"])


def step(record: dict, path: str) -> dict:
    return next(s for s in record["steps"] if s["path"] == path)


def limits(record: dict, path: str) -> dict[str, dict]:
    return {m["name"]: m["limits"] for m in step(record, path)["measurements"]}


def series(record: dict, name: str) -> list[dict]:
    return [s for s in record["series"] if s["name"] == name]


def plots(tree: Node, name: str) -> list[Node]:
    return tree.find_all("svg", cls="plot", data_series=name)


def marks(svg: Node, cls: str) -> list[float]:
    return [float(n.attrs["data-value"]) for n in svg.iter() if cls in n.classes and "data-value" in n.attrs]


def plotted(svg: Node, column: str) -> list[tuple[str, float, float]]:
    """The path of ``column`` mapped back from pixels to data units through its panel's frame."""
    frame = svg.find_all("rect", cls="axis", data_column=column)[0].attrs
    path = svg.find_all("path", cls="line", data_column=column)[0].attrs["d"]
    x0, y0, w, h = (float(frame[k]) for k in ("x", "y", "width", "height"))
    xlo, xhi, ylo, yhi = (float(frame[f"data-{k}"]) for k in ("x-lo", "x-hi", "y-lo", "y-hi"))
    return [(cmd, xlo + (float(px) - x0) / w * (xhi - xlo), ylo + (y0 + h - float(py)) / h * (yhi - ylo))
            for cmd, px, py in re.findall(r"([ML])(-?[\d.]+) (-?[\d.]+)", path)]


def assert_draws_rows(svg: Node, column: str, rows: list, col: int) -> list[tuple[str, float, float]]:
    """Every recorded sample is drawn where it was recorded (to within a pixel), none added."""
    points = plotted(svg, column)
    frame = svg.find_all("rect", cls="axis", data_column=column)[0].attrs
    px_x = (float(frame["data-x-hi"]) - float(frame["data-x-lo"])) / float(frame["width"])
    px_y = (float(frame["data-y-hi"]) - float(frame["data-y-lo"])) / float(frame["height"])
    assert len(points) == len(rows)
    for (_, x, y), row in zip(points, rows):
        assert x == pytest.approx(row[0], abs=px_x) and y == pytest.approx(row[col], abs=px_y)
    return points


def test_operator_is_recorded_and_shown(run, reports):
    record, tree = run
    assert record["operator"] == OPERATOR
    facts = {r.find_all("th")[0].all_text(): r.find_all("td")[0].all_text()
             for r in tree.find_all("table", cls="facts")[0].find_all("tr")}
    assert facts["Operator"] == OPERATOR
    smoke = rendered_tree(reports["tmp"], reports["smoke"])  # run without --operator
    anonymous = {r.find_all("th")[0].all_text(): r.find_all("td")[0].all_text()
                 for r in smoke.find_all("table", cls="facts")[0].find_all("tr")}
    assert "none given" in anonymous["Operator"]
    assert "SIMULATED" in tree.find_all("div", cls="banner")[0].all_text()


def test_cell_chart_marks_the_limits_the_cells_were_judged_against(run):
    record, tree = run
    lim = limits(record, "main/cells")
    low, high, spread = lim["v_min"]["min"], lim["v_max"]["max"], lim["v_spread"]["max"]
    (svg,) = plots(tree, "cell_voltages")
    assert set(marks(svg, "limit-min")) == {low} and set(marks(svg, "limit-max")) == {high}
    text = svg.all_text()
    assert f"min {low:.4g} V" in text and f"max {high:.4g} V" in text and "spread ≤ 30 mV" in text
    (band,) = svg.find_all("rect", cls="spread-band")
    assert float(band.attrs["data-value"]) == spread
    volts = [r[1] for r in series(record, "cell_voltages")[0]["rows"]]
    start = float(band.attrs["data-from"])
    assert all(start <= v <= start + spread for v in volts)  # a passing pack sits inside its band
    assert len(svg.find_all("circle", cls="ok")) == len(volts) and not svg.find_all("circle", cls="over-spread")


def test_precharge_curve_is_the_recorded_series_from_the_request(run):
    record, tree = run
    (rec,) = series(record, "precharge")
    (svg,) = plots(tree, "precharge")
    frame = svg.find_all("rect", cls="axis", data_column="bus_voltage_V")[0].attrs
    assert float(frame["data-x-lo"]) == 0.0  # the time axis starts when precharge was requested
    assert float(frame["data-y-lo"]) <= 0.0  # and the voltage axis at 0 V
    points = assert_draws_rows(svg, "bus_voltage_V", rec["rows"], 1)
    assert [p[0] for p in points].count("M") == 1  # one unbroken curve
    judged = next(m for m in step(record, "main/contactors")["measurements"] if m["name"] == "precharge_time")
    assert marks(svg, "limit-max") == [judged["limits"]["max"]]
    assert marks(svg, "measured") == [judged["value"]]
    assert float(frame["data-x-hi"]) >= judged["limits"]["max"]  # the margin to the limit is on the plot


def test_insulation_plots_show_the_reading_settling_against_its_limit(run):
    record, tree = run
    recorded = series(record, "insulation")
    svgs = plots(tree, "insulation")
    assert len(svgs) == len(recorded) == 2
    for rec, svg in zip(recorded, svgs):
        floor = limits(record, rec["path"])["resistance"]["min"]
        assert marks(svg, "limit-min") == [floor]
        assert_draws_rows(svg, "resistance_ohm", rec["rows"], 1)
        assert rec["rows"][-1][1] > floor > rec["rows"][0][1]  # the plot shows it crossing the limit


def test_dcir_pulse_shows_voltage_and_current_without_inventing_the_pause(run):
    record, tree = run
    (rec,) = series(record, "dcir")
    (svg,) = plots(tree, "dcir")
    labels = [t.all_text() for t in svg.find_all("text", cls="label")]
    assert {"voltage [V]", "current [A]", "t [s]"} <= set(labels)
    t = [r[0] for r in rec["rows"]]
    steps = [b - a for a, b in itertools.pairwise(t)]
    pauses = sum(dt > 3 * statistics.median(steps) for dt in steps)
    assert pauses >= 1  # the rest between discharge and regen is not sampled
    for col, i in (("voltage_V", 1), ("current_A", 2)):
        points = assert_draws_rows(svg, col, rec["rows"], i)
        assert [p[0] for p in points].count("M") == 1 + pauses


def test_every_axis_names_its_unit(run):
    _, tree = run
    panels = 0
    for svg in tree.find_all("svg", cls="series"):
        frames = svg.find_all("rect", cls="axis")
        y_labels = [t.all_text() for t in svg.find_all("text", cls="label") if "rotate" in t.attrs.get("transform", "")]
        assert len(y_labels) == len(frames)
        for frame, label in zip(frames, y_labels):
            if split_unit(frame.attrs["data-column"])[1]:
                assert re.fullmatch(r".+ \[\S+\]", label), label
                panels += 1
    assert panels >= 8  # insulation ×2, precharge, dcir ×2, soc ×3


def test_failed_run_leads_with_the_failure_and_marks_it(failed_report):
    record = json.loads(failed_report["json"].read_text())
    tree = rendered_tree(failed_report["tmp"], failed_report["html"])
    failed = [(s, m) for s in record["steps"] for m in s["measurements"] if m["verdict"] == "fail"]
    assert record["verdict"] == "FAIL" and [(s["path"], m["name"]) for s, m in failed] == [("main/cells", "v_spread")]
    (box,) = tree.find_all("div", cls="failures")
    (_, bad), = failed
    for text in ("main/cells", f"v_spread = {format_quantity(bad['value'], bad['unit'])}",
                 format_limits(bad["limits"], bad["unit"])):
        assert text in box.all_text()
    target = box.find_all("a")[0].attrs["href"].lstrip("#")
    assert "main/cells" in tree.find_all(id=target)[0].all_text()
    rows = tree.find_all("tr", cls="m-fail")
    assert [r.find_all("td")[0].all_text() for r in rows] == ["v_spread"]
    (figure,) = [f for f in tree.find_all("figure") if f.find_all("svg", data_series="cell_voltages")]
    assert "failed" in figure.classes
    svg = figure.find_all("svg")[0]
    (band,) = svg.find_all("rect", cls="spread-band")
    spread, start = float(band.attrs["data-value"]), float(band.attrs["data-from"])
    assert spread == limits(record, "main/cells")["v_spread"]["max"]
    volts = [r[1] for r in series(record, "cell_voltages")[0]["rows"]]
    outside = [v for v in volts if not start <= v <= start + spread]
    flagged = svg.find_all("circle", cls="over-spread") + svg.find_all("circle", cls="out")
    assert 1 <= len(flagged) == len(outside) < len(volts) / 2  # the odd cell stands out, not the other 95
    assert f"{min(volts):.4f} V" in flagged[0].all_text()


_JUDGE_UNITS = {"MOhm": "MΩ", "kOhm": "kΩ", "mOhm": "mΩ", "Ohm": "Ω", "ohm": "Ω", "degC": "°C", "uA": "µA", "uV": "µV"}
_NUMBER = re.compile(r"(-?\d+(?:\.\d+)?(?:e[-+]?\d+)?)(?: (\S+))?")


def test_every_value_reads_as_the_judge_recorded_it(run):
    """The report's value column says what the sequencer's own text says (30 %, not 0.3 %)."""
    _, tree = run
    compared = 0
    for row in tree.find_all("tr", cls="measurement"):
        judged = re.split(r" \[| == | ~ | PASS| FAIL", row.attrs.get("title", ""))[0]
        shown = row.find_all("td")[4].all_text()
        a, b = _NUMBER.fullmatch(judged), _NUMBER.fullmatch(shown)
        if not (a and b):
            continue
        # shown at 4 significant digits (the row tooltip keeps the judge's full text)
        assert float(b.group(1)) == pytest.approx(float(a.group(1)), rel=5e-4), (judged, shown)
        assert (b.group(2) or "") == _JUDGE_UNITS.get(a.group(2) or "", a.group(2) or ""), (judged, shown)
        compared += 1
    assert compared >= 40
