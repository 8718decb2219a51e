"""The ``station`` command line (the contract the README documents): run, validate, schema, sim, ui, results.

Exit codes: 0 PASS, 1 FAIL, 2 usage/plan/config error (nothing was touched), 3 ERROR or ABORTED,
4 refused by the line (the MES said no or could not answer the route check; nothing was touched).
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
                         description="Run a test plan. Exit 0 PASS, 1 FAIL, 2 plan/config error, 3 ERROR/ABORTED, 4 refused by the line (MES).")
    run.add_argument("plan", nargs="?", help="plan file (default: from the product catalogue by --serial)")
    run.add_argument("--sim", action="store_true", help="run against the in-process simulator on virtual time")
    run.add_argument("--station", metavar="FILE", help="station config (default with --sim: the simulated station)")
    run.add_argument("--serial", default="SN0001", help="pack serial number")
    run.add_argument("--variant", help="plan variant (default: from the product catalogue, else the first)")
    run.add_argument("--fixture", help="fixture id (default: the first in the station config)")
    run.add_argument("--fault", action="append", default=[], metavar="NAME[:k=v,...]",
                     help="inject a simulator fault (repeatable; see `station sim faults`)")
    run.add_argument("--operator", default="", metavar="ID", help="operator id for the record")
    run.add_argument("--pin-file", metavar="FILE", help="the operator's PIN (first line; - reads stdin); else STATION_PIN or a prompt")
    run.add_argument("--json", metavar="FILE", help="write the full record as JSON")
    run.add_argument("--junit", metavar="FILE", help="write JUnit XML (one testcase per step)")
    run.add_argument("--db", metavar="FILE", help="result store (default: from the station config)")
    run.add_argument("--report", metavar="FILE.html", help="write a self-contained HTML report")
    run.add_argument("--answer", action="append", default=[], metavar="TEXT",
                     help="answers to operator prompts, in order (non-interactive runs)")
    run.add_argument("--plain", action="store_true", help="plain progress lines even in a terminal")
    run.add_argument("--stop-on-failure", action="store_true", help="go to teardown at the first failed step")

    val = sub.add_parser("validate", help="check plans: PATH:LINE:COL: message per problem; exit 2 on any")
    val.add_argument("plans", nargs="+", metavar="PLAN|DIR",
                     help="plan files, or directories searched for plans (as station test does)")
    val.add_argument("--station", metavar="FILE", help="also check instruments against this station config")
    val.add_argument("--variant", help="check only this variant (default: every variant)")

    sub.add_parser("schema", help="print the JSON Schema of the plan language")

    act = sub.add_parser("actions", help="the action reference: arguments, units, defaults, measurements, "
                                         "preconditions, safe-state effects (generated from the registry)")
    act.add_argument("names", nargs="*", metavar="NAME", help="only these actions (default: every action)")
    act.add_argument("--markdown", action="store_true", help="the whole reference as Markdown (docs/actions.md)")

    rel = sub.add_parser("release", help="sign a plan's release digest into a station config (admins)")
    rel.add_argument("plan")
    rel.add_argument("--station", metavar="FILE", required=True)
    rel.add_argument("--operator", metavar="ID", required=True)
    rel.add_argument("--key", metavar="FILE", help="the admin's Ed25519 private key (PEM); required in production")
    rel.add_argument("--pin-file", metavar="FILE", help="the admin's PIN (first line; - reads stdin); else STATION_PIN or a prompt")

    ver = sub.add_parser("verify", help="check every release's signature and content; exit 0 ok, 3 broken")
    ver.add_argument("plans", nargs="*", metavar="PLAN", help="only these plans (default: every release)")
    ver.add_argument("--station", metavar="FILE", required=True)

    aud = sub.add_parser("audit", help="the hash-chained audit log: verify (exit 0 intact, 3 tampered), show")
    aud.add_argument("audit_command", choices=("verify", "show"))
    aud.add_argument("--station", metavar="FILE", help="the log beside this station's store (default: simulated)")
    aud.add_argument("--db", metavar="FILE", help="the log beside this result store")
    aud.add_argument("--log", metavar="FILE", help="this audit log file")

    keys = sub.add_parser("keys", help="release signing keys: `keys new FILE` writes a private key")
    keys.add_argument("keys_command", choices=("new",))
    keys.add_argument("file")
    keys.add_argument("--id", help="key id to suggest for trusted_keys")
    keys.add_argument("--owner", metavar="OPERATOR",
                      help="operator id (an admin) who holds the key, for the printed trusted_keys entry")

    users = sub.add_parser("users", help="station user file: `users set ID` sets a hashed PIN (or --badge)")
    users.add_argument("users_command", choices=("set",))
    users.add_argument("id")
    users.add_argument("--station", metavar="FILE", required=True)
    users.add_argument("--badge", action="store_true", help="set the badge code instead of the PIN")
    users.add_argument("--pin-file", metavar="FILE", help="read the PIN/badge from this file (- reads stdin); else STATION_PIN, a prompt, or piped in")

    cov = sub.add_parser("coverage", help="faults × steps matrix of a plan's declared catches")
    cov.add_argument("plan")
    cov.add_argument("--proof", metavar="FILE", help="`station test --json` output: show proven coverage")
    cov.add_argument("--station", metavar="FILE",
                     help="station config whose simulated packs the catches must reach (default: the simulated station)")

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
    serve.add_argument("--preset", default="car-400", help="shipped pack (see `station sim packs`)")
    serve.add_argument("--pack", metavar="FILE", help="serve the pack of this pack definition file instead")
    packs = simsub.add_parser("packs", help="list the shipped packs, or check pack definition files")
    packs.add_argument("files", nargs="*", metavar="FILE|DIR",
                       help="pack files (a folder: every .yaml/.yml in it) to check and list (exit 2 on a problem)")
    packs.add_argument("--station", metavar="FILE",
                       help="list the shipped packs and every pack file this station config names")
    packs.add_argument("--schema", action="store_true",
                       help="print the pack file's JSON Schema (for a copied pack file's modeline: "
                            "station sim packs --schema > schema/pack.schema.json beside it)")
    serve.add_argument("--fault", action="append", default=[], metavar="NAME[:k=v,...]")
    serve.add_argument("--speed", type=float, default=1.0, help="time scale (1 = real time)")
    serve.add_argument("--write-station", metavar="FILE",
                       help="write a station config for the served endpoints (time_scale = --speed) once they are up")
    simsub.add_parser("faults", help="list the fault catalogue with parameters and defaults")

    fix = sub.add_parser("fixture", help="the start-up check on demand: status (exit 0 safe, 3 not), make-safe")
    fixsub = fix.add_subparsers(dest="fixture_command", metavar="SUBCOMMAND")
    for name, text in (("status", "read every instrument back and print each finding (switches nothing)"),
                       ("make-safe", "safe state of everything energised, read back, latches cleared (audited)")):
        cmd = fixsub.add_parser(name, help=text)
        cmd.add_argument("--station", metavar="FILE")
        cmd.add_argument("--fixture", help="fixture id (default: every fixture)")
        cmd.add_argument("--sim", action="store_true", help="against the in-process simulated bench")
        if name == "make-safe":
            cmd.add_argument("--operator", required=True, help="engineer or admin id (audited)")

    ui = sub.add_parser("ui", help="the operator terminal UI")
    ui.add_argument("--sim", action="store_true")
    ui.add_argument("--station", metavar="FILE")

    stats = sub.add_parser("stats", help="yield, first-pass yield, top failing steps, Cp/Cpk per measurement")
    from station.line.stats_args import add_arguments

    add_arguments(stats)
    from station.line.analytics_args import add_msa_arguments, add_rejudge_arguments

    add_rejudge_arguments(sub.add_parser(
        "rejudge", help="what-if limits: stored measurements re-judged against new limits"))
    add_msa_arguments(sub.add_parser(
        "msa", help="gauge R&R (AIAG, ANOVA) from repeated runs of the same packs"))

    db = sub.add_parser("db", help="the line's PostgreSQL: migrate (admin), retain/archive months")
    line = sub.add_parser("line", help="line integration: delivery status")
    from station.line.line_status_args import add_arguments as add_line_arguments
    from station.line.pg_admin_args import add_arguments as add_db_arguments

    add_db_arguments(db)
    add_line_arguments(line)

    res = sub.add_parser("results", help="the result store: list, show, export")
    res.add_argument("--db", metavar="FILE", help="result store (default: the simulated station's)")
    ressub = res.add_subparsers(dest="results_command", metavar="SUBCOMMAND")
    lst = ressub.add_parser("list", help="recent runs")
    lst.add_argument("--limit", type=int, default=20)
    lst.add_argument("--serial")
    lst.add_argument("--mode", choices=("production", "development", "all"),
                     help="runs of this station mode (default: the store's own mode; `all` mixes them)")
    show = ressub.add_parser("show", help="one run in detail")
    show.add_argument("run_id")
    exp = ressub.add_parser("export", help="export one run (JSON, JUnit, HTML), or measurements as CSV/Parquet")
    exp.add_argument("run_id", nargs="?", help="the run (optional with --format: default all runs)")
    exp.add_argument("--format", choices=("csv", "parquet"), help="measurements as one flat table")
    exp.add_argument("--output", "-o", metavar="FILE", help="with --format: the file to write")
    exp.add_argument("--pg", metavar="URL", help="with --format: read the line's PostgreSQL instead")
    exp.add_argument("--schema", help="with --pg: the schema")
    exp.add_argument("--since", metavar="YYYY-MM-DD", help="with --format: runs started on or after")
    exp.add_argument("--until", metavar="YYYY-MM-DD", help="with --format: runs started on or before")
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

    _quiet_library_logs()
    try:
        return commands.dispatch(args, parser)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 3
    finally:
        _detach_dead_terminal()


def _quiet_library_logs() -> None:
    """Transport libraries log what our transports then raise as typed errors naming the
    instrument and command (python-can's "Failed to receive" when a socketcand peer dies):
    without a handler Python prints those on the operator's screen."""
    import logging

    for name in ("can", "pymodbus", "pyvisa"):
        logging.getLogger(name).addHandler(logging.NullHandler())


def _detach_dead_terminal() -> None:
    """After a hang-up the terminal is gone: a failed flush at interpreter exit would replace
    the run's exit code with 120. Point stdout/stderr at /dev/null if they cannot be flushed."""
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            try:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, stream.fileno())
                os.close(null)
            except (OSError, ValueError):
                pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
