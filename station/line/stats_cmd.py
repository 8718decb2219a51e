"""``station stats``: the command (options in stats_args.py, figures in stats.py, outputs in
stats_export.py and stats_html.py; ``--reference`` in drift_cmd.py)."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from station.results.store import StoreError

from .population import UsageProblem, open_source, population_from
from .stats import compute


def stats_command(args: argparse.Namespace, out: TextIO | None = None,
                  err: TextIO | None = None) -> int:
    """``station stats``: 0 on success, 2 for a bad option or a store that cannot be read."""
    out, err = out or sys.stdout, err or sys.stderr
    fmt = getattr(args, "format", None) or "text"
    try:
        pop = population_from(args)
        with open_source(args.store, getattr(args, "schema", None)) as src:
            if getattr(args, "reference", False):
                from .drift_cmd import reference_command

                return reference_command(args, src, pop, out, err)
            wants_plots = fmt == "html" or getattr(args, "html", None)
            report = compute(src, pop, top=getattr(args, "top", 10) or 10,
                             points=getattr(args, "points", 300) if wants_plots else 0)
    except (UsageProblem, StoreError) as exc:
        print(f"station stats: {exc}", file=err)
        return 2
    from .stats_export import emit

    try:
        emit(report, fmt, out, output=getattr(args, "output", None), source=args.store,
             table=getattr(args, "table", None) or "capability")
        if getattr(args, "html", None):
            from .stats_html import write_html

            write_html(report, args.html, source=args.store)
    except OSError as exc:
        print(f"station stats: cannot write: {exc}", file=err)
        return 2
    return 0
