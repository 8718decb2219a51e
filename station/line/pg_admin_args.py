"""The ``station db`` arguments, apart from pg_admin.py so the CLI parser stays light."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    """``station db migrate|retain`` arguments."""
    sub = p.add_subparsers(dest="db_command", metavar="SUBCOMMAND")
    mig = sub.add_parser("migrate", help="create/upgrade the line schema (admin role)")
    mig.add_argument("url", help="postgresql:// URL of an admin role")
    mig.add_argument("--schema", help="schema holding the tables (default: the search_path)")
    mig.add_argument("--create-schema", action="store_true", help="create the schema if missing")
    mig.add_argument("--station-role", action="append", default=[], metavar="ROLE",
                     help="grant this role what a station needs (DML on its tables); repeatable")
    mig.add_argument("--reader-role", action="append", default=[], metavar="ROLE",
                     help="grant this role SELECT on every table and view; repeatable")
    ret = sub.add_parser("retain", help="archive and drop months older than --keep-months")
    ret.add_argument("url", help="postgresql:// URL of an admin role")
    ret.add_argument("--schema")
    ret.add_argument("--keep-months", type=int, required=True, metavar="N",
                     help="keep this month and the N before it")
    ret.add_argument("--archive", metavar="DIR", help="write DIR/<YYYY-MM>/<table>.csv.gz first")
    ret.add_argument("--no-archive", action="store_true", help="drop without archiving")
