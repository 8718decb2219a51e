"""Start-up check: what the last session left behind, before a new run may start.

``await startup_report(config, store)`` returns human-readable lines, one per finding:

- every run the store shows as ``interrupted`` (its station process died mid-run: crash,
  SIGKILL, power loss), with pack serial, plan, start time and the last step journalled, so the
  operator knows which pack has no verdict and must be retested;
- per fixture, every instrument's own read-back (``station.startup_check``): cycler output,
  current and latched protections, safety tester idle and discharged, BMS contactors, leak
  tester vented, fixture relays and e-stop, the bus voltage by the DMM. With ``act`` (what
  ``station run`` does) anything energised is brought to the safe state and read back again,
  and latched protections are cleared once the fixture is confirmed safe, each audited. An
  instrument that cannot be reached or read is a finding too; this never raises for
  instrument trouble.

Lines that need action start with ``"NOT SAFE"`` or ``"INTERRUPTED"``; ``blocking(lines)`` says
whether a new run must wait. ``plc_state`` is the PLC-only read the operator UI shows.
"""

from __future__ import annotations

from typing import Any

from drivers.errors import InstrumentError
from station.config import LoadedConfig

# Outputs that must be off before a run starts (name -> why), as in the fixture PLC map.
MUST_BE_OFF = {
    "ir_hv_plus": "IR/hipot relay to HV+ closed",
    "ir_hv_minus": "IR/hipot relay to HV- closed",
    "hvil_break": "HVIL break relay active (pack HVIL loop held open)",
}
RUN_LIMIT = 50  # newest runs scanned for interrupted ones


def interrupted_runs(store, limit: int = RUN_LIMIT) -> list[str]:
    """One ``INTERRUPTED ...`` line per interrupted run among the newest ``limit`` runs."""
    lines = []
    for run in store.runs(limit=limit):
        if run["status"] != "interrupted":
            continue
        steps = store.record(run["id"]).get("steps") or []
        last = f"last step journalled {steps[-1]['path']} ({steps[-1]['outcome']})" if steps else "no step journalled"
        lines.append(f"INTERRUPTED run {run['id']} of pack {run['serial']} (plan {run['plan_id']} "
                     f"{run['plan_version']}, started {run['started_utc']}): no verdict; {last}. Retest the pack.")
    return lines


def _unreadable(fixture: str, plc: Any, err: BaseException) -> str:
    return (f"NOT SAFE fixture {fixture}: PLC at {plc.resource} could not be read "
            f"({type(err).__name__}: {err}); relay state unknown")


async def plc_state(fixture: str, plc: Any) -> list[str]:
    """The PLC's relays and e-stop only, from a driver that is already open (the operator UI's
    panel; ``fixture_check`` is the whole check); never raises for instrument trouble."""
    try:
        outputs = await plc.read_outputs()
        inputs = await plc.read_inputs()
    except (TimeoutError, InstrumentError, OSError) as err:
        return [_unreadable(fixture, plc, err)]
    problems = [f"NOT SAFE fixture {fixture}: {why} ({name} on)"
                for name, why in MUST_BE_OFF.items() if outputs.get(name)]
    if problems:
        return problems
    notes = [f"fixture {fixture}: safe (IR relays open, HVIL break off)"]
    if inputs.get("estop_released") is False:
        notes.append(f"fixture {fixture}: e-stop pressed; release it before a run")
    return notes


async def startup_report(config: LoadedConfig, store, *, endpoints: dict[str, str] | None = None,
                         fixtures: list[str] | None = None, act: bool = False, operator: str = "") -> list[str]:
    """Interrupted runs in ``store``, then each fixture's start-up check (all by default), on
    instruments opened for it and closed after (read-only unless ``act``).

    ``endpoints`` fills the ``{placeholders}`` of a simulator config (``SimBench.endpoints``).
    """
    from station.instruments import StationInstruments

    instruments = StationInstruments(config, endpoints)
    try:
        lines, _checks = await startup(config, store, instruments, fixtures or config.fixture_ids(),
                                       act=act, operator=operator)
    finally:
        await instruments.close()
    return lines


async def startup(config: LoadedConfig, store, instruments, fixtures: list[str], *, act: bool,
                  operator: str = "", source: str = "start-up check") -> tuple[list[str], dict[str, Any]]:
    """Interrupted runs, then ``fixture_check`` of each fixture through ``instruments`` (a
    ``StationInstruments``, left open for the run): (screen lines, ``FixtureCheck`` by fixture)."""
    lines = interrupted_runs(store) if store is not None else []
    checks = {}
    for fixture in fixtures:
        checks[fixture] = await fixture_check(config, instruments, fixture, act=act, operator=operator, source=source)
        lines.extend(checks[fixture].lines())
    return lines, checks


async def fixture_check(config: LoadedConfig, instruments, fixture: str, *, act: bool, operator: str = "",
                        source: str = "start-up check", force: bool = False):
    """Open the fixture's instruments (each on its own: one that fails does not hide the
    others), read them back and, with ``act``, make them safe; what was done is audited.
    ``force`` (the explicit ``station fixture make-safe``) runs every safe state and audits it
    even when nothing read energised."""
    from station.instruments import FixtureInstruments, InstrumentSetupError, open_failure
    from station.startup_check import check_fixture

    fx = instruments.build(fixture)
    opened, unreachable = {}, {}
    for role, driver in fx.drivers.items():
        try:
            await instruments.open(FixtureInstruments(fixture, {role: driver}, {role: fx.keys[role]}))
            opened[role] = driver
        except InstrumentSetupError as err:
            unreachable[role] = f"{driver.resource}: {open_failure(role, err.__cause__ or err)}"
    locks = instruments.locks_for(fx)
    busy = frozenset(role for role, lock in locks.items() if lock.locked())

    def audit(role: str, latched: tuple[str, ...]) -> None:
        _audit(config, "clear_protection", fixture=fixture, instrument=role, protections=list(latched),
               operator=operator, source=source)

    check = await check_fixture(fixture, opened, act=act, force=force, unreachable=unreachable, busy=busy,
                                on_clear=audit)
    made_safe = [line for line in check.done if " cleared latched protection " not in line]
    if act and (made_safe or force):
        _audit(config, "make_safe", fixture=fixture, operator=operator, source=source,
               found=[f.line() for f in check.found if not f.safe], done=made_safe, safe=check.safe)
    return check


def _audit(config: LoadedConfig, kind: str, **fields: Any) -> None:
    from station.security.audit import AuditLog, audit_path

    AuditLog(audit_path(config)).append(kind, **fields)


def blocking(lines: list[str]) -> bool:
    """True if a finding forbids starting a run until someone acts (a fixture not safe)."""
    return any(line.startswith("NOT SAFE") for line in lines)
