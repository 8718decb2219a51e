"""Arguments of ``station rejudge`` and ``station msa`` (light: the CLI parser imports this)."""

from __future__ import annotations

import argparse

from .population import add_population_arguments


def add_rejudge_arguments(p: argparse.ArgumentParser) -> None:
    add_population_arguments(p)
    new = p.add_mutually_exclusive_group(required=True)
    new.add_argument("--limits", metavar="FILE.yaml", help="new limits: STEP.MEASUREMENT: limit")
    new.add_argument("--plan", metavar="NEW_PLAN.yaml", help="the limits of a new plan version")
    p.add_argument("--format", choices=("text", "json", "csv", "html"), default="text")
    p.add_argument("--output", "-o", metavar="FILE", help="write the output here (default stdout)")


def add_msa_arguments(p: argparse.ArgumentParser) -> None:
    add_population_arguments(p)
    p.add_argument("--appraiser", choices=("fixture", "operator", "station"), default="fixture",
                   help="what reproducibility is across (default fixture)")
    p.add_argument("--serial", action="append", default=[], metavar="SERIAL",
                   help="a part of the study (repeatable; default: every serial with repeated runs)")
    p.add_argument("--measurement", action="append", default=[], metavar="STEP.NAME",
                   help="only these measurements (repeatable)")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="significance of the part × appraiser interaction below which it is "
                        "pooled into repeatability (default 0.05)")
    p.add_argument("--format", choices=("text", "json", "csv", "html"), default="text")
    p.add_argument("--output", "-o", metavar="FILE", help="write the output here (default stdout)")
