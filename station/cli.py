"""The ``station`` command line (the contract in DESIGN.md): run, validate, schema, sim, ui, results.

Exit codes: 0 PASS, 1 FAIL, 2 usage/plan/config error (nothing was touched), 3 ERROR or ABORTED.
Imports are lazy so ``station --help`` starts fast.
"""

from __future__ import annotations

import argparse
import sys

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="station", description="EOL test station for EV traction battery packs.")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a plan on a fixture (against the simulator with --sim)",
                         description="Run a test plan. Exit 0 PASS, 1 FAIL, 2 plan/config error, 3 ERROR/ABORTED.")
    run.add_argument("plan", nargs="?", help="plan file (default: from the product catalogue by --serial)")
    run.add_argument("--sim", action="store_true", help="run against the in-process simulator on virtual time")
    run.add_argument("--station", metavar="FILE", help="station config (default with --sim: the simulated station)")
    run.add_argument("--serial", default="SN0001", help="pack serial number")
    run.add_argument("--variant", help="plan variant (default: from the product catalogue, else the first)")
    run.add_argument("--fixture", help="fixture id (default: the first in the station config)")
    run.add_argument("--fault", action="append", default=[], metavar="NAME[:k=v,...]",
                     help="inject a simulator fault (repeatable; see `station sim faults`)")
    run.add_argument("--operator", default="", metavar="ID", help="operator id for the record")
    run.add_argument("--json", metavar="FILE", help="write the full record as JSON")
    run.add_argument("--junit", metavar="FILE", help="write JUnit XML (one testcase per step)")
    run.add_argument("--db", metavar="FILE", help="result store (default: from the station config)")
    run.add_argument("--report", metavar="FILE.html", help="write a self-contained HTML report")
    run.add_argument("--answer", action="append", default=[], metavar="TEXT",
                     help="answers to operator prompts, in order (non-interactive runs)")
    run.add_argument("--plain", action="store_true", help="plain progress lines even in a terminal")
    run.add_argument("--stop-on-failure", action="store_true", help="go to teardown at the first failed step")

    val = sub.add_parser("validate", help="check plans: PATH:LINE:COL: message per problem; exit 2 on any")
    val.add_argument("plans", nargs="+", metavar="PLAN")
    val.add_argument("--station", metavar="FILE", help="also check instruments against this station config")
    val.add_argument("--variant", help="check only this variant (default: every variant)")

    sub.add_parser("schema", help="print the JSON Schema of the plan language")

    rel = sub.add_parser("release", help="record a plan's sha256 as released in a station config (admins)")
    rel.add_argument("plan")
    rel.add_argument("--station", metavar="FILE", required=True)
    rel.add_argument("--operator", metavar="ID", required=True)

    cov = sub.add_parser("coverage", help="faults × steps matrix of a plan's declared catches")
    cov.add_argument("plan")
    cov.add_argument("--proof", metavar="FILE", help="`station test --json` output: show proven coverage")

    tst = sub.add_parser("test", help="prove plans on the simulator: golden runs pass, every declared catch holds",
                         description="For every plan x variant: the golden run must PASS and every declared catch "
                                     "must end as declared (verdict, step) with the pack safe. Runs in parallel. "
                                     "Exit 0 all hold, 1 a proof failed, 2 plan/config error.")
    tst.add_argument("plans", nargs="+", metavar="PLAN", help="plan files or directories of plans")
    tst.add_argument("--station", metavar="FILE", help="station config (default: the simulated station)")
    tst.add_argument("--fixture", help="fixture id (default: the first in the station config)")
    tst.add_argument("--variant", action="append", metavar="V", help="only this variant (repeatable; default: all)")
    tst.add_argument("--jobs", "-j", type=int, metavar="N", help="worker processes (default: one per core)")
    tst.add_argument("--only", action="append", metavar="FAULT",
                     help="only the catches (and explored forms) of this catalogue fault (repeatable); golden runs always")
    tst.add_argument("--explore", action="store_true",
                     help="also inject every catalogue fault the plan does not declare: caught or let through")
    tst.add_argument("--junit", metavar="FILE", help="JUnit XML: one test case per golden run and per catch")
    tst.add_argument("--json", metavar="FILE", help="every run as JSON (input of `station coverage --proof`)")
    tst.add_argument("--db", metavar="FILE", help="result store for the runs' records (default: out/station-test.db)")

    sim = sub.add_parser("sim", help="the simulator: serve the bench, list faults")
    simsub = sim.add_subparsers(dest="sim_command", metavar="SUBCOMMAND")
    serve = simsub.add_parser("serve", help="serve the simulated bench on loopback; prints its endpoints")
    serve.add_argument("--preset", default="car-400", help="pack preset (car-400, bus-700)")
    serve.add_argument("--fault", action="append", default=[], metavar="NAME[:k=v,...]")
    serve.add_argument("--speed", type=float, default=1.0, help="time scale (1 = real time)")
    simsub.add_parser("faults", help="list the fault catalogue with parameters and defaults")

    ui = sub.add_parser("ui", help="the operator terminal UI")
    ui.add_argument("--sim", action="store_true")
    ui.add_argument("--station", metavar="FILE")

    stats = sub.add_parser("stats", help="yield, first-pass yield, top failing steps, Cp/Cpk per measurement")
    from station.line.stats_args import add_arguments

    add_arguments(stats)

    res = sub.add_parser("results", help="the result store: list, show, export")
    res.add_argument("--db", metavar="FILE", help="result store (default: the simulated station's)")
    ressub = res.add_subparsers(dest="results_command", metavar="SUBCOMMAND")
    lst = ressub.add_parser("list", help="recent runs")
    lst.add_argument("--limit", type=int, default=20)
    lst.add_argument("--serial")
    show = ressub.add_parser("show", help="one run in detail")
    show.add_argument("run_id")
    exp = ressub.add_parser("export", help="export one run")
    exp.add_argument("run_id")
    exp.add_argument("--json", metavar="FILE")
    exp.add_argument("--junit", metavar="FILE")
    exp.add_argument("--html", metavar="FILE")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.version:
        from station import __version__

        print(f"station {__version__}")
        return 0
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from station import commands

    try:
        return commands.dispatch(args, parser)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
