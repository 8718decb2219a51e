"""``station test PLAN...``: prove every plan x variant — the golden run passes, every declared
catch ends as declared with the pack safe — in parallel; with ``--explore`` also inject every
catalogue fault the plan does not declare and report what it would let through.

Exit 0 when every proof holds (and no explored fault left the pack unsafe), 1 otherwise,
2 when a plan or the station config is wrong (nothing was run).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

from station.plan.discover import file_kind, plan_files
from station.proof.cases import CATCH, EXPLORE, GOLDEN, Case, plan_cases
from station.proof.execute import CaseResult

DEFAULT_DB = "out/station-test.db"


def collect(paths: list[str], *, variants: list[str] | None = None, explore: bool = False,
            station: str | None = None, fixture: str | None = None, only: list[str] | None = None,
            notes: list[str] | None = None) -> list[Case]:
    """Every case of every plan (with ``only``: golden runs and the cases of those faults).
    With ``variants``, each plan is proven for those of them it has; a variant no plan has is a
    problem. Raises ``InputError`` with every plan's problems at once; ``notes`` gets what was
    left out and why (a plan with none of ``variants``)."""
    from drivers.base.diagnostics import InputError, Problem

    if only:
        from sim.faults import check_fault

        bad = [Problem("--only", 1, 1, msg) for name in only if (msg := check_fault(name, {}))]
        if bad:
            raise InputError(bad)

    cases: list[Case] = []
    problems = []
    files = plan_files(paths)
    lacking: list[str] = []  # plans with none of the variants asked for
    for path in files:
        try:
            found = plan_cases(path, variants=variants, explore=explore, station=station, fixture=fixture,
                               partial=bool(variants))
        except InputError as err:
            problems.extend(err.problems)
            continue
        if variants and not found and file_kind(Path(path)) != "library":
            lacking.append(path)
        cases.extend(found)
    if variants and not problems:
        missing = [v for v in variants if v not in {c.variant for c in cases}]
        if missing:  # a variant no plan has: said at every plan, as binding it would
            for path in files:
                try:
                    plan_cases(path, variants=missing, station=station, fixture=fixture)
                except InputError as err:
                    problems.extend(err.problems)
    if problems:
        raise InputError(problems)
    if notes is not None:
        notes.extend(f"{path}: none of the variants asked for ({', '.join(variants or [])}); not proven"
                     for path in lacking)
    if only:
        cases = [c for c in cases if c.fault is None or c.fault in only]
    check_prepared(cases)
    return cases


def check_prepared(cases: list[Case]) -> None:
    """Prepare each plan x variant once (station config, plan bound to its instruments, release,
    simulated pack) before anything runs: a problem there fails every run of it the same way,
    so it is a plan or config error, each problem said once, not a column of failed proofs.
    Raises ``InputError``; what was prepared stays cached for the runs."""
    from drivers.base.diagnostics import InputError
    from station.proof.execute import prepared

    problems = _production_stations([c.station for c in cases])
    if problems:
        raise InputError(problems)
    for key in dict.fromkeys((c.plan, c.variant, c.station, c.fixture) for c in cases):
        try:
            prepared(*key)
        except InputError as err:
            problems.extend(err.problems)
    if problems:
        raise InputError(problems)  # the same config problem of several plans is said once


def _production_stations(stations: list[str | None]) -> list:
    """A production station config given for a proof, located at its ``mode``: a proof's runs
    are simulated, a development station's (its serial ``PROOF`` is no product's, its records
    no production store's). The built-in simulated station (None) is a development one."""
    from drivers.base.diagnostics import InputError
    from station.config import load_config

    problems = []
    for station in dict.fromkeys(s for s in stations if s):
        try:
            config = load_config(station)
        except InputError:
            continue  # preparing the runs says what is wrong with it
        if config.config.mode == "production":
            problems.extend(config.problem(("mode",), "station test proves plans on the simulator, as a development "
                                                      "station's runs; this is a production station's config: prove "
                                                      "with a copy of it in development mode").problems)
    return problems


def summary(results: list[CaseResult], wall_s: float, jobs: int, db: str) -> list[str]:
    declared = [r for r in results if r.case.kind != EXPLORE]
    failed = [r for r in declared if not r.ok]
    golden = sum(1 for r in declared if r.case.kind == GOLDEN)
    catches = sum(1 for r in declared if r.case.kind == CATCH)
    lines = [f"proof: {len(declared) - len(failed)}/{len(declared)} hold ({golden} golden runs, {catches} catches) "
             f"in {wall_s:.1f} s wall with {jobs} job(s)"]
    explored = [r for r in results if r.case.kind == EXPLORE]
    if explored:
        # not applicable: the pack lacks it, the plan never uses its instrument, or it was due after
        # the run ended; none of them was let through
        na = Counter(r.na for r in explored if not r.applicable)
        met = [r for r in explored if r.applicable]
        caught = sum(1 for r in met if r.caught)
        unsafe = sum(1 for r in explored if not r.ok)
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(na.items()))
        lines.append(f"explore: {len(met)} undeclared fault forms x variants: {caught} caught anyway, "
                     f"{len(met) - caught} let through, {unsafe} left the pack unsafe or did not run"
                     + (f"; {na.total()} not applicable ({why})" if na else ""))
    for r in failed + [r for r in explored if not r.ok]:
        lines.append(f"FAILED {r.case.id}: {r.problem}")
        if r.run_id:
            lines.append(f"  record: run {r.run_id} (station results --db {db} show {r.run_id})")
    lines.append(f"records: {db}")
    return lines


def test_command(args) -> int:
    from station.proof.outputs import output_problems
    from station.proof.parallel import default_jobs, run_cases
    from station.proof.report import Matrix, ProgressView, write_json, write_junit

    if args.jobs is not None and args.jobs < 1:
        print("station test: --jobs must be at least 1", file=sys.stderr)
        return 2
    skipped: list[str] = []
    files = plan_files(args.plans, skipped)  # found once: collect takes the files as named paths
    for path in skipped:
        print(f"station test: {path}: not a plan (no top-level schema_version:); skipped",
              file=sys.stderr)
    notes: list[str] = []
    cases = collect(files, variants=args.variant or None, explore=args.explore, station=args.station,
                    fixture=args.fixture, only=args.only, notes=notes)
    for note in notes:
        print(f"station test: {note}", file=sys.stderr)
    if not cases:
        print("station test: no plans to prove (only libraries, or no *.yaml) in " + " ".join(args.plans),
              file=sys.stderr)
        return 2
    db = args.db or DEFAULT_DB
    problems = output_problems(db, args.junit, args.json)
    if problems:  # every run would fail the same way, or the report after them all
        for problem in problems:
            print(f"station test: {problem}", file=sys.stderr)
        return 2
    jobs = min(args.jobs or default_jobs(), len(cases))
    matrix = Matrix(cases)
    results: list[CaseResult] = []
    start = time.perf_counter()
    with ProgressView(matrix) as view:
        for result in run_cases(cases, db, jobs):
            results.append(result)
            view.add(result)
    wall = time.perf_counter() - start
    print("\n".join(summary(results, wall, jobs, db)))
    code = 0 if all(r.ok for r in results) else 1
    reports = []
    if args.json:
        reports.append(("--json", args.json, lambda: write_json(
            results, args.json, {"plans": files, "explore": args.explore, "jobs": jobs,
                                 "wall_s": round(wall, 3), "db": db})))
    if args.junit:
        reports.append(("--junit", args.junit, lambda: write_junit(results, args.junit)))
    for flag, path, write in reports:  # checked before the runs; a disk that filled since still says so
        try:
            write()
        except OSError as err:
            print(f"station test: {flag} {path}: cannot write it: {err.strerror or err}", file=sys.stderr)
            code = 1
    return code
