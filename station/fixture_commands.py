"""``station fixture status|make-safe``: the start-up check on demand.

``status`` reads every instrument of the fixture(s) back and prints each finding (exit 0 when
all are safe, 3 when anything is energised, latched or cannot be read); it switches nothing.
``make-safe`` (engineers and admins, audited) does what ``station run``'s start-up check does:
safe state of everything energised, read back, latched protections cleared once safe.
"""

from __future__ import annotations

import sys

EXIT_SAFE, EXIT_NOT_SAFE = 0, 3
MAY_MAKE_SAFE = ("engineer", "admin")


def fixture_command(*, station: str | None, fixture: str | None, sim: bool, act: bool, operator: str = "") -> int:
    """Run the check on ``fixture`` (all by default); print it; return the exit code."""
    from drivers.base.diagnostics import InputError, Problem
    from station import clock
    from station.config import SIM_CONFIG, load_config

    if not station and not sim:
        raise InputError([Problem("station", 1, 1, "no station config: give --station FILE, or --sim")])
    config = load_config(station or SIM_CONFIG)
    fixtures = [fixture] if fixture else config.fixture_ids()
    unknown = [f for f in fixtures if f not in config.config.fixtures]
    if unknown:
        raise InputError([Problem(str(config.path), 1, 1, f"no fixture '{unknown[0]}'; fixtures: "
                                                          f"{', '.join(config.fixture_ids())}")])
    if act:
        _authorize(config, operator)
    for f in fixtures:
        config.instruments_for(f)  # every resource and option checked before anything is opened
    checks = clock.run(_check(config, fixtures, sim=sim, act=act, operator=operator), virtual=sim)
    for check in checks:
        for finding in check.found if not act else check.after:
            mark = "ok " if finding.safe else "NOT SAFE"
            print(f"{check.fixture} {finding.instrument:8} {finding.what:12} {mark:8} {finding.detail}")
        for line in check.done:
            print(f"{check.fixture} done: {line}")
        print(f"fixture {check.fixture}: " + ("safe" if check.safe else
              "NOT SAFE: " + "; ".join(p.line() for p in check.problems)))
    return EXIT_SAFE if all(c.safe for c in checks) else EXIT_NOT_SAFE


def _authorize(config, operator: str) -> None:
    from drivers.base.diagnostics import InputError, Problem
    from station.security.roles import find_operator

    if not operator:
        raise InputError([Problem("--operator", 1, 1, "make-safe needs --operator ID (an engineer or admin)")])
    op = find_operator(config, operator)
    if op.role not in MAY_MAKE_SAFE:
        raise InputError([Problem(str(config.path), 1, 1,
                                  f"'{op.id}' is a{'n' if op.role[0] in 'aeiou' else ''} {op.role}: "
                                  "only engineers and admins may make a fixture safe from the command line")])


async def _check(config, fixtures: list[str], *, sim: bool, act: bool, operator: str):
    from station.instruments import StationInstruments
    from station.startup import fixture_check

    bench = endpoints = None
    if sim:
        from sim.bench import SimBench
        from station.simpack import safety_driver

        bench = SimBench({f: config.config.fixtures[f].sim_preset or "car-400" for f in config.fixture_ids()},
                         safety=safety_driver(config))
        endpoints = await bench.start()
    instruments = StationInstruments(config, endpoints)
    try:
        return [await fixture_check(config, instruments, f, act=act, operator=operator, force=act,
                                    source="station fixture make-safe") for f in fixtures]
    finally:
        for line in await instruments.close():
            print(f"warning: {line}", file=sys.stderr)
        if bench is not None:
            await bench.stop()
