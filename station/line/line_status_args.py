"""The ``station line`` arguments, apart from line_status.py so the CLI parser stays light."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="line_command", metavar="SUBCOMMAND")
    st = sub.add_parser("status", help="delivery backlog per target, oldest item, last error")
    st.add_argument("--station", metavar="FILE", help="station config (its journal and targets)")
    st.add_argument("--db", metavar="FILE", help="the station's journal (default: from --station)")
    st.add_argument("--json", action="store_true", help="print JSON instead of a table")
