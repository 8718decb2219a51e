"""`station msa`: gauge R&R by the ANOVA method, checked against the AIAG MSA manual's example.

Reference data and published results: AIAG, *Measurement Systems Analysis*, 4th edition (2010),
chapter III section B, the gauge study of 10 parts × 3 appraisers (A, B, C) × 3 trials and its
ANOVA table and analysis (as also reproduced in W. McNeese, "Three Ways to Analyze a Gage R&R
Study", SPC for Excel / BPI Consulting, 2015). Published: SS part 88.3619, appraiser 3.1673,
interaction 0.3590, equipment 2.7589, total 94.6471; MS 9.81799, 1.58363, 0.01994, 0.04598;
interaction F 0.434 (not significant, pooled); EV 0.199933 (18.4 %), AV 0.226838 (20.9 %),
GRR 0.302373 (27.9 %), PV 1.042327 (96.0 %), ndc 4.
"""

from __future__ import annotations

import argparse
import io
import json
import math

import pytest

from station.line import msa, msa_cmd
from station.line.forwarder import Forwarder
from station.line.pg_store import PgResultStore
from station.results import ResultStore
from tests.line.test_stats import emit_run

AIAG = {
    "A": [[0.29, -0.56, 1.34, 0.47, -0.80, 0.02, 0.59, -0.31, 2.26, -1.36],
          [0.41, -0.68, 1.17, 0.50, -0.92, -0.11, 0.75, -0.20, 1.99, -1.25],
          [0.64, -0.58, 1.27, 0.64, -0.84, -0.21, 0.66, -0.17, 2.01, -1.31]],
    "B": [[0.08, -0.47, 1.19, 0.01, -0.56, -0.20, 0.47, -0.63, 1.80, -1.68],
          [0.25, -1.22, 0.94, 1.03, -1.20, 0.22, 0.55, 0.08, 2.12, -1.62],
          [0.07, -0.68, 1.34, 0.20, -1.28, 0.06, 0.83, -0.34, 2.19, -1.50]],
    "C": [[0.04, -1.38, 0.88, 0.14, -1.46, -0.29, 0.02, -0.46, 1.77, -1.49],
          [-0.11, -1.13, 1.09, 0.20, -1.07, -0.67, 0.01, -0.56, 1.45, -1.77],
          [-0.15, -0.96, 0.67, 0.11, -1.45, -0.49, 0.21, -0.49, 1.87, -2.16]],
}
CELLS = {(f"P{p + 1:02d}", op): [trial[p] for trial in trials]
         for op, trials in AIAG.items() for p in range(10)}


def _check_published(s: msa.GaugeStudy) -> None:
    ss = {row.source: row for row in s.table}
    assert [round(ss[k].ss, 4) for k in ("part", "appraiser", "part × appraiser", "repeatability",
                                         "total")] == [88.3619, 3.1673, 0.3590, 2.7589, 94.6471]
    assert [round(ss[k].ms, 5) for k in ("part", "appraiser", "part × appraiser", "repeatability")] == [
        9.81799, 1.58363, 0.01994, 0.04598]
    assert round(ss["part × appraiser"].f, 3) == 0.434 and s.pooled
    # (to the manual's 6 decimals; its GRR is rounded from the rounded components)
    assert [s.sd(c) for c in ("repeatability", "reproducibility", "grr", "part")] == pytest.approx(
        [0.199933, 0.226838, 0.302373, 1.042327], abs=1.5e-6)
    assert [round(s.pct_tv(c), 1) for c in ("repeatability", "reproducibility", "grr", "part")] == [
        18.4, 20.9, 27.9, 96.0]
    assert s.ndc == 4 and s.verdict == "conditionally acceptable"
    assert (s.parts, s.appraisers, s.trials) == (10, 3, 3)


def test_anova_reproduces_the_aiag_manual_example():
    _check_published(msa.anova_grr(CELLS))


def test_f_tail_matches_its_closed_form():
    # For d1 = 2 the F distribution's tail is (1 + 2f/d2)^(-d2/2): an independent check of the
    # incomplete beta function behind every p-value.
    for f, d2 in ((0.434, 60), (3.0, 60), (10.0, 7), (0.01, 100)):
        assert msa.f_sf(f, 2, d2) == pytest.approx((1 + 2 * f / d2) ** (-d2 / 2), rel=1e-10)
    assert msa.betainc(3.0, 4.0, 0.5) == pytest.approx(0.65625, rel=1e-12)  # = 42/64


def test_verdict_bands_and_unpooled_interaction():
    parts = [10.0 * i for i in range(10)]
    noise = [-1.0, 0.0, 1.0]

    def study(scale, inter=0.0):
        cells = {(i, a): [p + (a - 1) * scale + inter * ((i + a) % 3 - 1) + n * scale for n in noise]
                 for i, p in enumerate(parts) for a in range(3)}
        return msa.anova_grr(cells)

    assert study(0.1).verdict == "acceptable" and study(0.1).pct_grr < 10
    assert study(5.0).verdict == "conditionally acceptable" and 10 <= study(5.0).pct_grr <= 30
    assert study(8.0).verdict == "not acceptable" and study(8.0).pct_grr > 30
    with_inter = study(0.1, inter=3.0)
    assert not with_inter.pooled and with_inter.var["interaction"] > 0


@pytest.mark.parametrize("drop,message", [
    (lambda c: {k: v for k, v in c.items() if k[0] in ("P01", "P02", "P03")}, "at least 5 parts"),
    (lambda c: {k: v[:1] for k, v in c.items()}, "2 trials"),
    (lambda c: {k: v for k, v in c.items() if k[1] == "A"}, "2 appraisers"),
    (lambda c: {k: v for k, v in c.items() if k != ("P04", "B")}, "part P04 has no trial by B"),
])
def test_design_is_checked(drop, message):
    with pytest.raises(msa.DesignProblem, match=message):
        msa.anova_grr(drop(CELLS))


def _store(path):
    """The AIAG study as runs: part = pack serial, appraiser = fixture, three trials each."""
    with ResultStore(path) as s:
        n = 0
        for trial in range(3):
            for (serial, fixture), values in sorted(CELLS.items()):
                n += 1
                emit_run(s, f"m{n:03d}", serial, "2026-11-24", values[trial], "PASS",
                         limits={"unit": "V", "min": -3.0, "max": 3.0}, fixture=fixture,
                         hour=8 + trial)
        # A production pack run once: not part of the study.
        emit_run(s, "other", "PX", "2026-11-24", 0.5, "PASS", limits={"unit": "V", "min": -3.0, "max": 3.0})


def _args(store, **kw):
    base = dict(store=str(store), format="json", appraiser="fixture", serial=[], measurement=[])
    return argparse.Namespace(**{**base, **kw})


def test_station_msa_from_runs_in_a_store_reproduces_the_example(tmp_path):
    path = tmp_path / "msa.db"
    _store(path)
    out, err = io.StringIO(), io.StringIO()
    assert msa_cmd.msa_command(_args(path), out=out, err=err) == 0, err.getvalue()
    (row,) = json.loads(out.getvalue())
    assert (row["parts"], row["appraisers"], row["trials"], row["ndc"]) == (10, 3, 3, 4)
    assert round(row["pct_grr"], 1) == 27.9 and row["verdict"] == "conditionally acceptable"
    assert row["pct_tolerance"] == pytest.approx(600 * 0.302373 / 6.0, rel=1e-5)
    text = io.StringIO()
    assert msa_cmd.msa_command(_args(path, format="text"), out=text) == 0
    assert "conditionally acceptable" in text.getvalue() and "ndc 4 < 5" in text.getvalue()
    # Three parts only: the design check refuses, naming why.
    err = io.StringIO()
    code = msa_cmd.msa_command(_args(path, serial=["P01", "P02", "P03"]), out=io.StringIO(), err=err)
    assert code == 2 and "at least 5 parts" in err.getvalue()


def test_station_msa_over_postgres_with_the_reader_role(tmp_path, pg_roles):
    path = tmp_path / "msa.db"
    _store(path)
    fwd = Forwarder(path, PgResultStore(pg_roles.station_url, schema=pg_roles.schema))
    assert fwd.forward_once() == 91
    fwd.stop()
    out, err = io.StringIO(), io.StringIO()
    args = _args(pg_roles.reader_url, schema=pg_roles.schema)
    assert msa_cmd.msa_command(args, out=out, err=err) == 0, err.getvalue()
    (row,) = json.loads(out.getvalue())
    assert math.isclose(row["components"]["grr"]["sd"], 0.302373, abs_tol=1.5e-6)
    assert row["ndc"] == 4
