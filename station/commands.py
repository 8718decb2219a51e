"""What each ``station`` command does (argument parsing lives in cli.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from drivers.base.diagnostics import InputError
from station.safetext import printable

EXIT_USAGE = 2


def cmd_rejudge(args) -> int:
    from station.line.rejudge_cmd import rejudge_command

    return rejudge_command(args)


def cmd_msa(args) -> int:
    from station.line.msa_cmd import msa_command

    return msa_command(args)


def _problems(err: InputError) -> int:
    for problem in err.problems:
        print(printable(problem), file=sys.stderr)  # a problem may quote a serial or a file's text
    return EXIT_USAGE


def dispatch(args, parser) -> int:
    handler = {
        "run": cmd_run, "validate": cmd_validate, "schema": cmd_schema, "actions": cmd_actions, "coverage": cmd_coverage,
        "sim": cmd_sim, "ui": cmd_ui, "results": cmd_results, "stats": cmd_stats, "release": cmd_release,
        **_security_commands(),
        "fixture": cmd_fixture,
        "db": cmd_db, "line": cmd_line,
        "rejudge": cmd_rejudge, "msa": cmd_msa,
        "test": cmd_test,
    }[args.command]
    try:
        return handler(args)
    except InputError as err:
        return _problems(err)


def _security_commands() -> dict:
    from station.security import commands as sc

    return {"verify": sc.cmd_verify, "audit": sc.cmd_audit, "keys": sc.cmd_keys, "users": sc.cmd_users}


def _authenticate(args) -> object:
    """The operator's authentication token (a PIN when needed; station.security.login)."""
    from station.config import SIM_CONFIG, load_config
    from station.security.audit import AuditLog, audit_path
    from station.security.login import cli_authenticate

    if not args.station and not args.sim:
        return None  # prepare() names the missing config
    config = load_config(args.station or SIM_CONFIG)
    return cli_authenticate(config, AuditLog(audit_path(config, args.db)), args.operator, args.pin_file)


def _startup_lines(lines: list[str]) -> None:
    """The start-up check before a run, on stderr (stdout carries the run's own output)."""
    for line in lines:
        print(f"start-up: {printable(line)}", file=sys.stderr, flush=True)  # serials of interrupted runs


def cmd_run(args) -> int:
    from station import clock
    from station.runner import (
        EXIT,
        EXIT_LINE_REFUSED,
        EXIT_REFUSED,
        LineRefused,
        RunRefused,
        RunRequest,
        execute,
        prepare,
    )
    from station.view import make_prompter, make_view

    req = RunRequest(
        plan=args.plan, serial=args.serial, variant=args.variant, fixture=args.fixture,
        operator=args.operator, sim=args.sim, station=args.station, faults=list(args.fault),
        db=args.db, json=args.json, junit=args.junit, report=args.report,
        stop_on_failure=args.stop_on_failure, auth=_authenticate(args),
    )
    prep = prepare(req)
    view = make_view(plain=args.plain)
    prompter = make_prompter(list(args.answer))

    async def main():
        with view:
            return await execute(req, prep, subscribers=[view], prompt_handler=prompter, on_startup=_startup_lines)

    try:
        verdict, run_id, _record = clock.run(main(), virtual=args.sim, scale=prep.config.config.time_scale)
    except RunRefused as err:
        print(f"station run: refused, no run started (no plan step ran; what the start-up check "
              f"switched is listed above): {printable(err)}. "
              f"Make the fixture safe (see above), then start again.", file=sys.stderr)
        return EXIT_REFUSED
    except LineRefused as err:
        print(f"station run: refused by the line, no run started (nothing was touched): "
              f"{err.message}", file=sys.stderr)
        return EXIT_LINE_REFUSED
    view.summary(verdict, printable(run_id))
    return EXIT[verdict]


def cmd_validate(args) -> int:
    from station.plan.bind import bind_plan
    from station.plan.loader import load_plan

    roles, offers = None, [None]
    if args.station:
        from station.config import load_config  # only with --station: the config models cost ~0.15 s

        loaded_cfg = load_config(args.station)
        roles = set().union(*(loaded_cfg.roles(f) for f in loaded_cfg.fixture_ids()))
        offers = _check_instruments(loaded_cfg)
        simulated = _simulated_fixtures(loaded_cfg)
    from station.plan.discover import plan_files

    skipped: list[str] = []
    paths = plan_files(args.plans, skipped)  # a directory: its plans, as station test finds them
    for path in skipped:
        print(f"{path}: not a plan (no top-level schema_version:); skipped", file=sys.stderr)
    if not paths:
        print(f"station validate: no plans in {' '.join(args.plans)}", file=sys.stderr)
        return EXIT_USAGE
    problems = []
    for path in paths:
        try:
            loaded = load_plan(path)
            if loaded.plan.kind == "library":
                print(f"{path}: library (checked where it is included)")
                continue
            variants = [args.variant] if args.variant else (list(loaded.plan.variants) or [None])
            for variant in variants:  # every variant, even after one failed: each names its own
                try:
                    for offer in offers[1:]:  # every fixture's instruments must offer what the plan needs
                        bind_plan(loaded, variant, roles, offer)
                    bound = bind_plan(loaded, variant, roles, offers[0])
                    if args.station and simulated:  # as station run --sim picks it: a variant needs a pack
                        from station.simpack import run_pack

                        run_pack(loaded_cfg, simulated[0], bound.variant)
                except InputError as err:
                    problems.extend(err.problems)
                    continue
                later = f", {len(bound.deferred)} checked at run time" if bound.deferred else ""
                print(f"{path}: OK ({loaded.plan.id} {loaded.plan.version}, variant {variant or '-'}, "
                      f"{bound.leaf_count()} step{'' if bound.leaf_count() == 1 else 's'}{later})")
                for note in bound.deferred:
                    print(f"  {printable(note)}")
        except InputError as err:
            problems.extend(err.problems)
    if problems:
        for problem in sorted(set(problems)):
            print(printable(problem), file=sys.stderr)
        return EXIT_USAGE
    return 0


def _simulated_fixtures(loaded_cfg) -> list[str]:
    """The fixtures whose instruments are the simulator's (resources with ``{placeholders}``)."""
    from station.config import PLACEHOLDER

    return [f for f in loaded_cfg.fixture_ids()
            if any(PLACEHOLDER.search(cfg.resource) or any(PLACEHOLDER.search(str(v)) for v in cfg.options.values())
                   for _key, cfg in loaded_cfg.instruments_for(f).values())]


def _check_instruments(loaded_cfg) -> list:
    """Each fixture's drivers, resources, options and map files, as ``station run`` checks them
    before opening anything (simulator configs, whose resources are placeholders filled by
    ``--sim``, have their files checked: maps, profiles); returns each fixture's offers."""
    from station.instruments import check_fixture

    problems, offers = [], []
    simulated = _simulated_fixtures(loaded_cfg)
    for fixture in loaded_cfg.fixture_ids():
        sim = fixture in simulated
        try:
            offers.append(check_fixture(loaded_cfg, fixture, sim=sim))
        except InputError as err:
            problems.extend(err.problems)
    if problems:
        raise InputError(problems)
    return offers or [None]


def plan_schema() -> dict:
    from station.plan.model import Plan

    schema = Plan.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "EOL station test plan"
    # The shorthand step form `- dmm.voltage: {range: 1000 V}` is accepted by the loader.
    # Generated from the action registry: editors complete action names and their arguments,
    # and an unknown action is flagged (station/actions/reference.py).
    from station.actions.reference import schema_entries

    names, shorthand, rules = schema_entries()
    action = schema["$defs"]["ActionStep"]
    action["properties"]["action"]["enum"] = names
    action["properties"].update(shorthand)
    action["allOf"] = rules
    action["required"] = []
    return schema


def cmd_schema(args) -> int:
    print(json.dumps(plan_schema(), indent=2, sort_keys=True))
    return 0


def cmd_actions(args) -> int:
    from station.actions import reference
    from station.actions.registry import all_actions

    if args.markdown:
        print(reference.markdown(), end="")
        return 0
    actions = all_actions()
    unknown = [n for n in args.names if n not in actions]
    if unknown:
        import difflib

        for name in unknown:
            close = difflib.get_close_matches(name, list(actions), n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            print(f"station actions: unknown action '{printable(name)}'{hint}; `station actions` lists them",
                  file=sys.stderr)
        return EXIT_USAGE
    print(reference.text(args.names or None), end="")
    return 0


def cmd_coverage(args) -> int:
    from station.coverage import coverage_command

    return coverage_command(args.plan, proof=args.proof, station=args.station)


def cmd_test(args) -> int:
    from station.proof.command import test_command

    return test_command(args)


def cmd_fixture(args) -> int:
    from station.fixture_commands import fixture_command

    if args.fixture_command not in ("status", "make-safe"):
        print("usage: station fixture {status,make-safe}", file=sys.stderr)
        return EXIT_USAGE
    return fixture_command(station=args.station, fixture=args.fixture, sim=args.sim,
                           act=args.fixture_command == "make-safe", operator=getattr(args, "operator", ""))


def cmd_release(args) -> int:
    from station.config import load_config
    from station.security.audit import AuditLog, audit_path
    from station.security.login import cli_authenticate
    from station.security.release import release_plan

    config = load_config(args.station)
    auth = cli_authenticate(config, AuditLog(audit_path(config)), args.operator, args.pin_file)
    digest = release_plan(args.station, args.plan, args.operator, key=args.key, auth=auth)
    signed = f", signed with {args.key}" if args.key else ", unsigned: development only"
    print(f"{printable(args.plan)}: released in {printable(args.station)} (sha256 {digest}{signed})")
    return 0


def cmd_stats(args) -> int:
    from station.line.stats_cmd import stats_command

    return stats_command(args)


def cmd_db(args) -> int:
    from station.line.pg_admin import db_command

    return db_command(args)


def cmd_line(args) -> int:
    from station.line.line_status import line_command

    return line_command(args)


def cmd_sim(args) -> int:
    if args.sim_command == "faults":
        from sim.faults import describe

        print("\n".join(describe()))
        return 0
    if args.sim_command == "serve":
        from sim.serve import serve_command

        return serve_command(preset=args.preset, faults=list(args.fault), speed=args.speed, pack=args.pack,
                             station_file=args.write_station)
    if args.sim_command == "packs":
        from sim.pack.commands import packs_command

        files = list(args.files)
        if args.station:  # the station's own pack files, after the shipped ones
            from station.config import load_config
            from station.simpack import pack_files

            files += pack_files(load_config(args.station))
        return packs_command(files, schema=args.schema, shipped_too=bool(args.station))
    print("usage: station sim {serve,faults,packs}", file=sys.stderr)
    return EXIT_USAGE


def cmd_ui(args) -> int:
    from station.ui.app import ui_command

    return ui_command(sim=args.sim, station=args.station)


def _default_db(db: str | None) -> Path:
    if db:
        return Path(db)
    from station.config import SIM_CONFIG, load_config

    loaded = load_config(SIM_CONFIG)
    return loaded.resolve_path(loaded.config.results.db)


def _export_table(args, db: Path) -> int:
    from station.line import export_table as et

    if not args.output:
        print("results export --format: give --output FILE", file=sys.stderr)
        return EXIT_USAGE
    try:
        rows = (et.rows_from_pg(args.pg, args.schema, args.run_id, args.since, args.until) if args.pg
                else et.rows_from_sqlite(db, args.run_id, args.since, args.until))
        et.write(rows, args.output, args.format)
    except (et.ExportError, OSError) as err:
        print(f"results export: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{args.output}: {len(rows)} measurement(s)")
    return 0


def cmd_results(args) -> int:
    from station.results import commands as rc

    db = _default_db(args.db)
    if args.results_command == "list":
        return rc.results_list(db, limit=args.limit, serial=args.serial, mode=args.mode)
    if args.results_command == "show":
        return rc.results_show(db, args.run_id)
    if args.results_command == "export" and args.format:
        return _export_table(args, db)
    if args.results_command == "export":
        if not args.run_id:
            print("results export: give RUN_ID (or --format csv|parquet for a table)", file=sys.stderr)
            return EXIT_USAGE
        code = 0
        targets = [("json", args.json), ("junit", args.junit), ("html", args.html)]
        if not any(path for _f, path in targets):
            print("results export: give --json FILE, --junit FILE and/or --html FILE", file=sys.stderr)
            return EXIT_USAGE
        for fmt, path in targets:
            if path:
                code = max(code, rc.results_export(db, args.run_id, fmt=fmt, path=path))
        return code
    print("usage: station results {list,show,export}", file=sys.stderr)
    return EXIT_USAGE
