"""The ``station stats`` arguments, apart from the statistics so the CLI parser stays light."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``station stats`` arguments."""
    p.add_argument("store", help="result store file, or a postgresql:// URL")
    p.add_argument("--schema", help="PostgreSQL schema holding the tables")
    p.add_argument("--station", dest="station_id", metavar="ID", help="only this station")
    p.add_argument("--since", metavar="YYYY-MM-DD", help="runs started on or after this day")
    p.add_argument("--until", metavar="YYYY-MM-DD", help="runs started on or before this day")
    p.add_argument("--top", type=int, default=10, help="how many failing steps to list")
    p.add_argument("--html", metavar="FILE.html", help="also write an HTML report with trends")
