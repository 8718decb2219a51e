"""``station rejudge`` output: text, JSON (everything), CSV (the changed runs), HTML (with plots)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from station.results.record import write_text_atomic

from .stats_text import fmt, pct, table

if TYPE_CHECKING:
    from .rejudge import RejudgeReport

_SHOWN = 50  # changed runs listed in the text output (all of them in JSON and CSV)


def as_json(r: RejudgeReport) -> dict[str, Any]:
    grp = lambda g: dict(zip(r.keys, g))  # noqa: E731
    return {
        "population": r.population.describe(), "limits": r.source, "runs_rejudged": r.rejudged_runs,
        "yield": [{**grp(g), "runs": y.runs, "passed_before": y.passed_before,
                   "passed_after": y.passed_after, "yield_before_pct": y.pct(y.passed_before),
                   "yield_after_pct": y.pct(y.passed_after), "pass_to_fail": y.to_fail,
                   "fail_to_pass": y.to_pass} for g, y in sorted(r.yields.items())],
        "measurements": [{**grp(d.group), "step": d.path, "measurement": d.name, "unit": d.unit,
                          "n": d.n, "mean": d.mean if d.n else None, "sigma": d.sigma,
                          "lsl_before": d.old_lsl, "usl_before": d.old_usl, "lsl_after": d.new_lsl,
                          "usl_after": d.new_usl, "fails_before": d.fails_before,
                          "fails_after": d.fails_after, "cpk_before": d.cpk_before,
                          "cpk_after": d.cpk_after, "not_judged": d.not_judged,
                          "why_not_judged": d.why_not or None} for d in r.measures],
        "changed_runs": [{"run_id": c.run_id, "serial": c.serial, **grp(c.group),
                          "station": c.station, "started": c.started, "before": c.before,
                          "after": c.after, "last_run_of_pack": c.last_of_pack,
                          "because": c.because} for c in r.changes],
        "packs_changed": sorted({c.serial for c in r.packs_changed}),
    }


def format_text(r: RejudgeReport) -> str:
    data = as_json(r)
    keys = r.keys
    lines = [f"Re-judged against {r.source}", r.population.describe(),
             f"{r.rejudged_runs} runs re-judged; {len(r.changes)} change verdict "
             f"({sum(c.after == 'FAIL' for c in r.changes)} PASS→FAIL, "
             f"{sum(c.after == 'PASS' for c in r.changes)} FAIL→PASS); "
             f"{len(data['packs_changed'])} packs' last verdict changes", "",
             "Yield before / after",
             table(keys + ["runs", "before", "after", "PASS→FAIL", "FAIL→PASS"],
                   [[*g, str(y.runs), pct(y.pct(y.passed_before)), pct(y.pct(y.passed_after)),
                     str(y.to_fail), str(y.to_pass)] for g, y in sorted(r.yields.items())]),
             "", "Measurements under the new limits",
             table(keys + ["step", "measurement", "n", "LSL", "USL", "new LSL", "new USL",
                           "fails", "fails new", "Cpk", "Cpk new", "not judged"],
                   [[*d.group, d.path, d.name, str(d.n), fmt(d.old_lsl), fmt(d.old_usl),
                     fmt(d.new_lsl), fmt(d.new_usl), str(d.fails_before), str(d.fails_after),
                     fmt(d.cpk_before), fmt(d.cpk_after), str(d.not_judged)] for d in r.measures])]
    why = [f"  {d.path} {d.name}: {d.not_judged} not re-judged: {d.why_not}"
           for d in r.measures if d.not_judged]
    if why:
        lines += ["", "Not re-judged (limit needs a value known only during a run):", *why]
    if r.changes:
        lines += ["", f"Runs that change verdict{f' (first {_SHOWN})' if len(r.changes) > _SHOWN else ''}",
                  table(["run", "serial", "station", "started", "before", "after", "last of pack",
                         "because"],
                        [[c.run_id, c.serial, c.station, c.started[:19], c.before, c.after,
                          "yes" if c.last_of_pack else "", "; ".join(c.because)]
                         for c in r.changes[:_SHOWN]])]
    if any(c.after == "PASS" for c in r.changes):
        lines += ["", "FAIL→PASS: passes as far as it was measured (a run that stopped at its "
                  "failure did not measure the steps after it)."]
    return "\n".join(lines) + "\n"


def as_csv(r: RejudgeReport) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["run_id", "serial", *r.keys, "station", "started", "before", "after",
                     "last_run_of_pack", "because"])
    for c in r.changes:
        writer.writerow([c.run_id, c.serial, *c.group, c.station, c.started, c.before, c.after,
                         int(c.last_of_pack), "; ".join(c.because)])
    return buf.getvalue()


def emit(r: RejudgeReport, fmt_: str, out: TextIO, output: str | None = None) -> None:
    if fmt_ == "json":
        text = json.dumps(as_json(r), indent=1, allow_nan=False) + "\n"
    elif fmt_ == "csv":
        text = as_csv(r)
    elif fmt_ == "html":
        from .analytics_html import rejudge_html

        text = rejudge_html(r)
    else:
        text = format_text(r)
    if output:
        write_text_atomic(Path(output), text)
    else:
        out.write(text)
