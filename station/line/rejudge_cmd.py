"""``station rejudge``: the command (what it computes in rejudge.py, its outputs in rejudge_out.py)."""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from drivers.base.diagnostics import InputError
from station.results.store import StoreError

from .population import UsageProblem, open_source, population_from
from .rejudge import rejudge
from .rejudge_limits import from_file, from_plan


def rejudge_command(args: argparse.Namespace, out: TextIO | None = None,
                    err: TextIO | None = None) -> int:
    """``station rejudge``: 0 on success, 2 for bad options, limits, plan or store."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        limits = from_plan(args.plan) if getattr(args, "plan", None) else from_file(args.limits)
        pop = population_from(args)
        with open_source(args.store, getattr(args, "schema", None)) as src:
            report = rejudge(src, pop, limits)
    except InputError as exc:
        for problem in exc.problems:
            print(problem, file=err)
        return 2
    except (UsageProblem, StoreError) as exc:
        print(f"station rejudge: {exc}", file=err)
        return 2
    from .rejudge_out import emit

    try:
        emit(report, getattr(args, "format", "text") or "text", out, getattr(args, "output", None))
    except OSError as exc:
        print(f"station rejudge: cannot write: {exc}", file=err)
        return 2
    return 0
