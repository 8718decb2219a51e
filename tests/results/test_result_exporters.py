"""Exporters: JSON (full record), JUnit XML (CI), self-contained HTML with SVG plots."""

from __future__ import annotations

import itertools
import json
import math
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from result_events import SERIAL, SHA, aborted_run, full_run

from station.results import ResultStore, write_html, write_json, write_junit
from station.results.html_report import render_html
from station.results.record import format_limits, format_quantity, to_jsonable
from station.results.svg import cell_chart, decimate, line_chart, nice_ticks, split_unit


def record_of(path, events, run_id):
    with ResultStore(path) as store:
        for e in events:
            store.handle(e)
        return store.record(run_id)


@pytest.fixture
def rec(db_path):
    return record_of(db_path, full_run(), "run-full-0001")


def test_json_export_is_the_full_record(rec, tmp_path):
    out = write_json(rec, tmp_path / "out" / "run.json")
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data == to_jsonable(rec)
    assert data["serial"] == SERIAL and data["plan"]["sha256"] == SHA
    assert len(data["steps"]) == 9 and data["steps"][2]["measurements"][0]["value"] == 0.142


def test_json_export_is_strict_about_non_finite_numbers(rec, tmp_path):
    rec["steps"][0]["measurements"][0]["value"] = math.inf
    text = write_json(rec, tmp_path / "r.json").read_text()
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c))["steps"][0][
        "measurements"][0]["value"] == "inf"


def _cases(root):
    return {c.get("name"): c for c in root.iter("testcase")}


def test_junit_one_case_per_step_with_failure_text(rec, tmp_path):
    root = ET.parse(write_junit(rec, tmp_path / "junit.xml")).getroot()
    suite = root.find("testsuite")
    cases = _cases(root)
    final_paths = list(dict.fromkeys(s["path"] for s in rec["steps"]))
    assert list(cases) == final_paths  # retried main/dcir appears once: its final attempt
    assert all(c.get("classname") == "pack-eol" for c in cases.values())
    failure = cases["main/bond[BP2]/bond_res"].find("failure")
    assert "resistance" in failure.get("message")
    # the step's name first; the value rounded; the limit one unbreakable group; the margin
    assert failure.get("message") == "bond res: resistance = 142 mΩ, limits ≤\u00a0100\u00a0mΩ (42 mΩ beyond max)"
    assert "0.142" in failure.text and '"max": 0.1' in failure.text
    cell_failure = cases["main/cells"].find("failure").get("message")
    assert "cell_voltage_max = 3.7 V" in cell_failure and "≤\u00a03.65\u00a0V" in cell_failure
    assert cases["main/optional_leak"].find("skipped") is not None
    assert cases["main/dcir"].find("error") is None  # passed on attempt 2
    assert "earlier attempt 1: error" in cases["main/dcir"].find("system-out").text
    for el in (root, suite):
        assert (el.get("tests"), el.get("failures"), el.get("errors"), el.get("skipped")) == (
            "8", "2", "0", "1")
        assert float(el.get("time")) > 0
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["serial"] == SERIAL and props["plan_sha256"] == SHA
    assert props["verdict"] == "FAIL" and props["plan_version"] == "3.2.0"
    assert "StaleSignalError" in suite.find("system-err").text


def test_junit_error_steps_and_control_characters(db_path, tmp_path):
    events = full_run()
    rec = record_of(db_path, events, "run-full-0001")
    rec["serial"] = "PK\x00\x1b[31m-7"  # a scanner sending garbage must not break the XML
    rec["steps"][5]["outcome"] = "aborted"
    rec["steps"][5]["error"] = "RunAborted: operator pressed stop <now>"
    root = ET.fromstring(write_junit(rec, tmp_path / "j.xml").read_bytes())
    error = _cases(root)["main/dcir"].find("error")
    assert error.get("type") == "aborted" and "operator pressed stop <now>" in error.text
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["serial"].startswith("PK") and "\x00" not in props["serial"]


def test_junit_run_verdict_case_when_no_step_explains_it(db_path, tmp_path):
    rec = record_of(db_path, aborted_run(), "run-abort-0002")
    root = ET.parse(write_junit(rec, tmp_path / "j.xml")).getroot()
    cases = _cases(root)
    assert list(cases) == ["main/charge", "(run verdict)"]
    err = cases["(run verdict)"].find("error")
    assert "ABORTED" in err.get("message") and "cell_temperature_max" in err.get("message")
    assert root.get("errors") == "1" and root.get("tests") == "2"


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.svgs, self.tags, self.classes = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        self.classes.append((tag, a.get("class", "")))
        if tag == "svg":
            self.svgs.append(a)


def test_html_report_is_self_contained_with_plots(rec, tmp_path):
    text = write_html(rec, tmp_path / "report" / "run.html").read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text
    parsed = _Collector()
    parsed.feed(text)
    assert not {"script", "link", "img", "iframe", "object"} & set(parsed.tags)
    assert "src=" not in text and "url(" not in text
    plots = {s["data-series"]: s["class"] for s in parsed.svgs if "plot" in s["class"].split()}
    assert set(plots) == {"ir_settling", "dcir_pulse", "cell_voltages"}
    assert "cell-voltages" in plots["cell_voltages"]
    assert ("div", "banner v-fail") in parsed.classes and ">FAIL<" in text
    assert "PK-0001&lt;&amp;&gt;&quot;x&quot;" in text and SERIAL not in text
    # the cell chart marks the over-voltage cell and both limits from the step's measurements
    assert ("circle", "cell out") in parsed.classes
    assert {("line", "limit limit-max"), ("line", "limit limit-min")} <= set(parsed.classes)
    # the DCIR chart has one panel per column, with units on its axes
    assert "voltage [V]" in text and "current [A]" in text and "t [s]" in text
    assert "resistance [MΩ]" in text
    assert SHA in text and "2026-01-01 (overdue)" in text  # calibration lapsed before the run
    assert "142 mΩ" in text and "≤ 100 mΩ" in text
    assert text.count('class="measurement m-fail"') == 2


def test_html_report_of_an_interrupted_run(db_path, tmp_path):
    events = full_run()[:12]
    store = ResultStore(db_path).open()
    for e in events:
        store.handle(e)
    store.close()
    with ResultStore(db_path) as again:
        rec = again.record("run-full-0001")
    text = write_html(rec, tmp_path / "r.html").read_text()
    assert "v-interrupted" in text and "INTERRUPTED" in text and "never finished" in text
    root = ET.parse(write_junit(rec, tmp_path / "r.xml")).getroot()
    unfinished = _cases(root)["main/bond[BP2]/bond_res"].find("error")  # measured, not finished
    assert unfinished.get("type") == "unfinished" and root.get("errors") == "1"
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["verdict"] == "INTERRUPTED" and props["status"] == "interrupted"


def test_cell_limits_from_series_columns(rec):
    series = next(s for s in rec["series"] if s["name"] == "cell_voltages")
    series["columns"] = ["cell", "voltage_V", "min_V", "max_V"]
    series["rows"] = [[i, 3.30 + 0.002 * i, 3.2, 3.31] for i in range(1, 9)]
    text = render_html(rec)
    assert "max 3.31 V" in text and "min 3.2 V" in text
    assert text.count('class="cell out"') == 3  # cells 6..8 are above 3.31 V


def test_svg_helpers():
    lo, hi, ticks = nice_ticks(0.013, 0.987)
    assert lo <= 0.013 and hi >= 0.987 and ticks[0] == lo and len(ticks) <= 8
    assert all(math.isclose((b - a), ticks[1] - ticks[0]) for a, b in itertools.pairwise(ticks))
    assert nice_ticks(5.0, 5.0)[0] < 5.0 < nice_ticks(5.0, 5.0)[1]
    assert split_unit("voltage_V") == ("voltage", "V") and split_unit("cell") == ("cell", "")
    xs = [float(i) for i in range(100_000)]
    ys = [0.0] * 100_000
    ys[54_321] = 9.0
    dx, dy = decimate(xs, ys, 1000)
    assert len(dx) <= 1100 and 9.0 in dy  # a spike survives thinning
    one = line_chart("solo", ["level_V"], [[1.0], [2.0], [float("nan")], [3.0]])
    assert 'data-series="solo"' in one and one.count(" M") + one.count('"M') == 2
    chart = cell_chart("c<", [1, 2], [3.3, 3.4], low=3.0, high=3.35)
    assert 'data-series="c&lt;"' in chart and chart.count('class="cell out"') == 1
    tight = cell_chart("cells", [1, 2, 3], [3.301, 3.305, 3.303], low=2.5, high=3.65)
    assert "min 2.5 V ↓" in tight and "limit-min off-scale" in tight  # would squash the spread
    assert 'class="limit limit-max"' not in tight and "max 3.65 V ↑" in tight


def test_formatting():
    assert format_quantity(5.23e8, "ohm") == "523 MΩ"
    assert format_quantity(0.0421, "V") == "42.1 mV"
    assert format_quantity(1200.0, "s") == "1200 s"
    assert format_quantity(True, "") == "true" and format_quantity("1.2.3", "") == "1.2.3"
    assert format_limits({"min": 8e4, "production_min": 5e8}, "ohm") == \
        "≥ 80 kΩ, production ≥ 500 MΩ"
    assert format_limits({}, "V") == "—"
