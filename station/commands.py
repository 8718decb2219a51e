"""What each ``station`` command does (argument parsing lives in cli.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from station.diagnostics import InputError

EXIT_USAGE = 2


def _problems(err: InputError) -> int:
    for problem in err.problems:
        print(problem, file=sys.stderr)
    return EXIT_USAGE


def dispatch(args, parser) -> int:
    handler = {
        "run": cmd_run, "validate": cmd_validate, "schema": cmd_schema, "coverage": cmd_coverage,
        "sim": cmd_sim, "ui": cmd_ui, "results": cmd_results, "stats": cmd_stats, "release": cmd_release,
        "test": cmd_test,
    }[args.command]
    try:
        return handler(args)
    except InputError as err:
        return _problems(err)


def _startup_lines(lines: list[str]) -> None:
    """The start-up check before a run, on stderr (stdout carries the run's own output)."""
    for line in lines:
        print(f"start-up: {line}", file=sys.stderr, flush=True)


def cmd_run(args) -> int:
    from station import clock
    from station.runner import EXIT, EXIT_REFUSED, RunRefused, RunRequest, execute, prepare
    from station.view import make_view, make_prompter

    req = RunRequest(
        plan=args.plan, serial=args.serial, variant=args.variant, fixture=args.fixture,
        operator=args.operator, sim=args.sim, station=args.station, faults=list(args.fault),
        db=args.db, json=args.json, junit=args.junit, report=args.report,
        stop_on_failure=args.stop_on_failure,
    )
    prep = prepare(req)
    view = make_view(plain=args.plain)
    prompter = make_prompter(list(args.answer))

    async def main():
        with view:
            return await execute(req, prep, subscribers=[view], prompt_handler=prompter, on_startup=_startup_lines)

    try:
        verdict, run_id, _record = clock.run(main(), virtual=args.sim)
    except RunRefused as err:
        print(f"station run: refused, no run started (nothing was switched): {err}. "
              f"Make the fixture safe (see above), then start again.", file=sys.stderr)
        return EXIT_REFUSED
    view.summary(verdict, run_id)
    return EXIT[verdict]


def cmd_validate(args) -> int:
    from station.plan.bind import bind_plan
    from station.plan.loader import load_plan

    roles = None
    if args.station:
        from station.config import load_config  # only with --station: the config models cost ~0.15 s

        loaded_cfg = load_config(args.station)
        roles = set().union(*(loaded_cfg.roles(f) for f in loaded_cfg.fixture_ids()))
    problems = []
    for path in args.plans:
        try:
            loaded = load_plan(path)
            if loaded.plan.kind == "library":
                print(f"{path}: library (checked where it is included)")
                continue
            variants = [args.variant] if args.variant else (list(loaded.plan.variants) or [None])
            for variant in variants:
                bound = bind_plan(loaded, variant, roles)
                print(f"{path}: OK ({loaded.plan.id} {loaded.plan.version}, variant {variant or '-'}, "
                      f"{bound.leaf_count()} steps)")
        except InputError as err:
            problems.extend(err.problems)
    if problems:
        for problem in sorted(set(problems)):
            print(problem, file=sys.stderr)
        return EXIT_USAGE
    return 0


def plan_schema() -> dict:
    from station.plan.model import Plan

    schema = Plan.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "EOL station test plan"
    # The shorthand step form `- dmm.voltage: {range: 1000 V}` is accepted by the loader.
    action = schema["$defs"]["ActionStep"]
    action["patternProperties"] = {r"^[a-z_]+\.[a-z_]+$": {"description": "shorthand: action name -> arguments"}}
    action["required"] = []
    return schema


def cmd_schema(args) -> int:
    print(json.dumps(plan_schema(), indent=2, sort_keys=True))
    return 0


def cmd_coverage(args) -> int:
    from station.coverage import coverage_command

    return coverage_command(args.plan, proof=args.proof)


def cmd_test(args) -> int:
    from station.proof.command import test_command

    return test_command(args)


def cmd_release(args) -> int:
    from station.security.release import release_plan

    digest = release_plan(args.station, args.plan, args.operator)
    print(f"{args.plan}: released in {args.station} (sha256 {digest})")
    return 0


def cmd_stats(args) -> int:
    from station.line.stats import stats_command

    return stats_command(args)


def cmd_sim(args) -> int:
    if args.sim_command == "faults":
        from sim.faults import describe

        print("\n".join(describe()))
        return 0
    if args.sim_command == "serve":
        from sim.serve import serve_command

        return serve_command(preset=args.preset, faults=list(args.fault), speed=args.speed)
    print("usage: station sim {serve,faults}", file=sys.stderr)
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


def cmd_results(args) -> int:
    from station.results import commands as rc

    db = _default_db(args.db)
    if args.results_command == "list":
        return rc.results_list(db, limit=args.limit, serial=args.serial)
    if args.results_command == "show":
        return rc.results_show(db, args.run_id)
    if args.results_command == "export":
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
