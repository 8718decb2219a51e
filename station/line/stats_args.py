"""The ``station stats`` arguments, apart from the statistics so the CLI parser stays light."""

from __future__ import annotations

import argparse

from .population import add_population_arguments


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``station stats`` arguments."""
    add_population_arguments(p)
    p.add_argument("--top", type=int, default=10, help="how many failing steps to list")
    p.add_argument("--format", choices=("text", "html", "csv", "json"), default="text",
                   help="output format (default text)")
    p.add_argument("--output", "-o", metavar="FILE", help="write the output here (default stdout)")
    p.add_argument("--table", choices=("yield", "failing", "capability"), default="capability",
                   help="which table --format csv writes (default capability)")
    p.add_argument("--points", type=int, default=300,
                   help="HTML trend plots: newest values per measurement (default 300)")
    p.add_argument("--html", metavar="FILE.html", help="also write an HTML report with trends")
    p.add_argument("--reference", action="store_true",
                   help="golden-pack drift: control charts of the reference packs' runs")
    p.add_argument("--reference-serial", action="append", default=[], metavar="SERIAL",
                   help="a reference pack serial (repeatable; default: the station config's)")
    p.add_argument("--alarm-mqtt", metavar="mqtt://HOST:PORT/TOPIC",
                   help="with --reference: publish the drift verdict there (retained)")
    p.add_argument("--config", metavar="STATION.yaml",
                   help="station config naming the reference packs (reference_serials)")
