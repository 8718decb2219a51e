"""HTML pages (self-contained, inline SVG) of ``station rejudge``, ``station msa`` and
``station stats --reference``."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from .analytics_svg import band, bars, control_chart
from .stats_text import fmt, pct

if TYPE_CHECKING:
    from .drift import Chart
    from .msa_study import MeasurementStudy
    from .population import Population
    from .rejudge import RejudgeReport

_CSS = """body{font-family:sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;
margin-bottom:1em}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}.bad{color:#c0392b;font-weight:bold}"""


def _page(title: str, body: list[str]) -> str:
    return "\n".join([f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{escape(title)}</title>'
                      f"<style>{_CSS}</style></head><body><h1>{escape(title)}</h1>", *body,
                      "</body></html>\n"])


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def rejudge_html(r: RejudgeReport) -> str:
    body = [f"<p>{escape(r.source)}</p><p>{escape(r.population.describe())}</p>",
            f"<p>{r.rejudged_runs} runs re-judged; {len(r.changes)} change verdict; "
            f"{len({c.serial for c in r.packs_changed})} packs' last verdict changes.</p>", "<h2>Yield</h2>"]
    for g, y in sorted(r.yields.items()):
        label = " / ".join(x for x in g if x)
        body.append(f"<h3>{escape(label)}</h3>")
        body.append(bars(f"yield {label}", [("before", y.pct(y.passed_before)), ("after", y.pct(y.passed_after))],
                         top=100.0))
    body.append("<h2>Measurements</h2>")
    for d in r.measures:
        body.append(f"<h3>{escape(d.path)} · {escape(d.name)}</h3>")
        body.append(_table(["n", "LSL", "USL", "new LSL", "new USL", "fails", "fails new", "Cpk", "Cpk new"],
                           [[str(d.n), fmt(d.old_lsl), fmt(d.old_usl), fmt(d.new_lsl), fmt(d.new_usl),
                             str(d.fails_before), str(d.fails_after), fmt(d.cpk_before), fmt(d.cpk_after)]]))
        body.append(band(f"{d.path} {d.name}", d.mean if d.n else None, d.sigma, (d.old_lsl, d.old_usl),
                         (d.new_lsl, d.new_usl), d.unit))
    if r.changes:
        body.append("<h2>Runs that change verdict</h2>")
        body.append(_table(["run", "serial", "station", "started", "before", "after", "because"],
                           [[c.run_id, c.serial, c.station, c.started[:19], c.before, c.after,
                             "; ".join(c.because)] for c in r.changes[:500]]))
    return _page("What-if limits", body)


def msa_html(result: list[MeasurementStudy], keys: list[str], pop: Population, appraiser: str) -> str:
    body = [f"<p>Appraisers: {escape(appraiser)}s. {escape(pop.describe())}</p>"]
    for m in result:
        body.append(f"<h2>{escape(m.path)} · {escape(m.name)}</h2>")
        s = m.study
        if s is None:
            body.append(f'<p class="bad">not computed: {escape(m.problem or "")}</p>')
            continue
        body.append(f"<p>{s.parts} parts × {s.appraisers} appraisers × {s.trials} trials; "
                    f'%GRR {pct(s.pct_grr)}, ndc {s.ndc}: <b>{escape(s.verdict)}</b></p>')
        body.append(_table(["source", "df", "SS", "MS", "F", "p"],
                           [[t.source, str(t.df), fmt(t.ss, 6), fmt(t.ms, 6), fmt(t.f), fmt(t.p, 3)]
                            for t in s.table]))
        body.append(bars(f"{m.path} {m.name}", [("repeatability (EV)", s.pct_tv("repeatability")),
                                               ("reproducibility (AV)", s.pct_tv("reproducibility")),
                                               ("GRR", s.pct_grr), ("part (PV)", s.pct_tv("part"))],
                         refs=[(10.0, "10 %"), (30.0, "30 %")], top=100.0))
        body.extend(f"<p>{escape(n)}</p>" for n in s.notes)
    return _page("Gauge R&R (ANOVA)", body)


def drift_html(result: list[Chart]) -> str:
    from .drift import flagged

    flags = flagged(result)
    body = [f'<p class="{"bad" if flags else ""}">' + (
        "DRIFTING: " + ", ".join(f"{s} fixture {f}" for s, f in flags) if flags
        else "no station or fixture drifting") + "</p>"]
    for c in result:
        state = "DRIFTING" if c.drifting else "ok"
        body.append(f"<h2>{escape(c.serial)} · {escape(c.station)} {escape(c.fixture)} · "
                    f"{escape(c.path)} {escape(c.name)}: {state}</h2>")
        body.append(control_chart(f"{c.serial} {c.station} {c.fixture} {c.path} {c.name}",
                                  [v for _, _, v in c.points], centre=c.centre, lcl=c.lcl, ucl=c.ucl,
                                  mr_ucl=c.mr_ucl, flagged=set(c.violations), baseline=c.baseline_n,
                                  unit=c.unit))
    return _page("Reference packs: drift", body)
