"""The analytics' HTML pages render in headless Chromium with their SVG plots: stats trends,
what-if limits (yield bars, spread against old and new limits), gauge R&R component bars with
the 10 %/30 % lines, golden-pack control charts with the flagged points. Skipped without Chromium."""

from __future__ import annotations

import argparse
import io

import pytest

from station.line import msa_cmd, rejudge_cmd, stats_cmd
from tests.line import test_drift, test_msa
from tests.line.test_stats import _seed
from tests.report.helpers import HAVE_CHROMIUM, NO_CHROMIUM, chromium, rendered_tree

pytestmark = pytest.mark.skipif(not HAVE_CHROMIUM, reason=NO_CHROMIUM)


def _render(tmp_path, page):
    tree = rendered_tree(tmp_path, page)
    assert tree.find_all("h1"), "nothing rendered"
    return tree


def test_stats_and_rejudge_pages(tmp_path):
    store = tmp_path / "r.db"
    _seed(store)
    page = tmp_path / "stats.html"
    args = argparse.Namespace(store=str(store), format="html", output=str(page), html=None)
    assert stats_cmd.stats_command(args, out=io.StringIO()) == 0
    tree = _render(tmp_path, page)
    (trend,) = tree.find_all("svg", cls="trend")
    assert len(trend.find_all("circle")) == 5 and trend.find_all("line", cls="usl")

    limits = tmp_path / "new.yaml"
    limits.write_text("limits:\n  cells.cell_v: {min: 3.15 V, max: 3.33 V}\n")
    page = tmp_path / "rejudge.html"
    args = argparse.Namespace(store=str(store), limits=str(limits), plan=None, format="html",
                              output=str(page))
    assert rejudge_cmd.rejudge_command(args, out=io.StringIO()) == 0
    tree = _render(tmp_path, page)
    (yield_bars,) = tree.find_all("svg", cls="bars")
    widths = {b.attrs["data-label"]: float(b.attrs["width"]) for b in yield_bars.find_all("rect", cls="bar")}
    assert widths["before"] == widths["after"] > 0  # 80 % before and after (one flip each way)
    (spread,) = tree.find_all("svg", cls="band")
    assert len(spread.find_all("line", cls="new-limit")) == 2 and len(spread.find_all("line", cls="old-limit")) == 2
    assert "r5" in tree.all_text() and "PASS" in tree.all_text()


def test_msa_page_has_component_bars_with_the_verdict_lines(tmp_path):
    store = tmp_path / "msa.db"
    test_msa._store(store)
    page = tmp_path / "msa.html"
    args = test_msa._args(store, format="html", output=str(page))
    assert msa_cmd.msa_command(args, out=io.StringIO()) == 0
    tree = _render(tmp_path, page)
    (chart,) = tree.find_all("svg", cls="bars")
    labels = [b.attrs["data-label"] for b in chart.find_all("rect", cls="bar")]
    assert labels == ["repeatability (EV)", "reproducibility (AV)", "GRR", "part (PV)"]
    assert [t.all_text() for t in chart.find_all("text") if "%" in t.all_text() and " " in t.all_text()] \
        == ["10 %", "30 %"]
    assert "conditionally acceptable" in tree.all_text()


def test_drift_page_marks_the_flagged_points(tmp_path):
    store = tmp_path / "gold.db"
    test_drift._store(store)
    page = tmp_path / "drift.html"
    args = test_drift._args(store, format="html", output=str(page))
    assert stats_cmd.stats_command(args, out=io.StringIO()) == 0
    tree = _render(tmp_path, page)
    charts = {c.attrs["data-key"].split()[2]: c for c in tree.find_all("svg", cls="control")}
    assert set(charts) == {"F1", "F2"}
    assert not charts["F1"].find_all("circle", cls="flagged")
    assert charts["F2"].find_all("circle", cls="flagged")
    assert len(charts["F2"].find_all("circle")) == 30 and charts["F2"].find_all("polyline", cls="moving-range")
    shot = tmp_path / "drift.png"
    proc = chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=900,1200")
    assert proc.returncode == 0 and shot.stat().st_size > 5000
