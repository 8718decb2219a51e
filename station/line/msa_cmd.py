"""``station msa``: the command; the studies it computes (and from which runs) are in msa_study.py,
their text and JSON there too, the HTML page in analytics_html.py."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TextIO

from station.results.store import StoreError

from .msa_study import as_json, format_text, studies
from .population import UsageProblem, open_source, population_from


def msa_command(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``station msa``: 0 when at least one study was computed; 2 for bad options, an unreadable
    store, or a selection that makes no study (the design problem is named)."""
    out, err = out or sys.stdout, err or sys.stderr
    appraiser = getattr(args, "appraiser", None) or "fixture"
    try:
        serials = tuple(getattr(args, "serial", None) or ()) or None
        pop = population_from(args, serials=serials)
        with open_source(args.store, getattr(args, "schema", None)) as src:
            result = studies(src, pop, appraiser=appraiser,
                             measurements=tuple(getattr(args, "measurement", None) or ()),
                             alpha=getattr(args, "alpha", 0.05) or 0.05)
    except (UsageProblem, StoreError) as exc:
        print(f"station msa: {exc}", file=err)
        return 2
    keys = [k for k in pop.keys if k != appraiser]
    if not any(m.study for m in result):
        why = "; ".join(sorted({f"{m.path} {m.name}: {m.problem}" for m in result})[:5]) or \
            "no pack of the selection was measured twice by two appraisers"
        print(f"station msa: no study can be computed: {why}", file=err)
        return 2
    fmt_ = getattr(args, "format", "text") or "text"
    if fmt_ == "json":
        text = json.dumps(as_json(result, keys), indent=1) + "\n"
    elif fmt_ == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(keys + ["step", "measurement", "parts", "appraisers", "trials", "ev", "av",
                           "grr", "pv", "tv", "pct_grr", "pct_tolerance", "ndc", "verdict"])
        for m in result:
            s = m.study
            w.writerow([*m.group, m.path, m.name] + ([s.parts, s.appraisers, s.trials,
                       *(repr(s.sd(c)) for c in ("repeatability", "reproducibility", "grr", "part", "total")),
                       repr(s.pct_grr), "" if s.pct_tolerance is None else repr(s.pct_tolerance),
                       s.ndc, s.verdict] if s else [""] * 10 + ["not computed"]))
        text = buf.getvalue()
    elif fmt_ == "html":
        from .analytics_html import msa_html

        text = msa_html(result, keys, pop, appraiser)
    else:
        text = format_text(result, keys, pop, appraiser)
    from .output import write_output

    return write_output(text, args, out, err, "msa")
