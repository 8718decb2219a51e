"""Start-up check: what the last session left behind, before a new run may start.

``await startup_report(config, store)`` returns human-readable lines, one per finding:

- every run the store shows as ``interrupted`` (its station process died mid-run: crash,
  SIGKILL, power loss), with pack serial, plan, start time and the last step journalled, so the
  operator knows which pack has no verdict and must be retested;
- per fixture, the fixture PLC's outputs as the PLC reports them (not as we last wrote them):
  IR/hipot relays open and the HVIL break released, plus the e-stop input. A fixture whose
  PLC cannot be reached is a finding too; this never raises for instrument trouble.

Lines that need action start with ``"NOT SAFE"`` or ``"INTERRUPTED"``; ``blocking(lines)`` says
whether a new run must wait. Read-only: nothing is switched, so a PLC left with a relay closed
is reported rather than silently "fixed" (the run's own safe state releases it).
"""

from __future__ import annotations

import asyncio
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


async def fixture_state(config: LoadedConfig, fixture: str, *, endpoints: dict[str, str] | None = None) -> list[str]:
    """Read one fixture's PLC outputs and e-stop input; one line per finding (``OK`` if safe)."""
    from station.instruments import StationInstruments

    instruments = StationInstruments(config, endpoints)
    roles = instruments.build(fixture).drivers
    plc: Any = roles.get("fixture")
    if plc is None:
        return [f"fixture {fixture}: no fixture PLC configured; safe state of its relays not checked"]
    try:
        await plc.open()
        return await plc_state(fixture, plc)
    except (InstrumentError, OSError, asyncio.TimeoutError) as err:
        return [_unreadable(fixture, plc, err)]
    finally:
        try:
            await plc.close()
        except Exception:  # closing is best effort; the finding above is what counts
            pass


def _unreadable(fixture: str, plc: Any, err: BaseException) -> str:
    return (f"NOT SAFE fixture {fixture}: PLC at {plc.resource} could not be read "
            f"({type(err).__name__}: {err}); relay state unknown")


async def plc_state(fixture: str, plc: Any) -> list[str]:
    """The findings of ``fixture_state`` from a PLC driver that is already open (the UI's
    session holds it: a serial PLC cannot be opened twice); never raises for instrument trouble."""
    try:
        outputs = await plc.read_outputs()
        inputs = await plc.read_inputs()
    except (InstrumentError, OSError, asyncio.TimeoutError) as err:
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
                         fixtures: list[str] | None = None) -> list[str]:
    """Interrupted runs in ``store``, then the safe state of each fixture's PLC (all by default).

    ``endpoints`` fills the ``{placeholders}`` of a simulator config (``SimBench.endpoints``).
    """
    lines = interrupted_runs(store)
    for fixture in fixtures or config.fixture_ids():
        lines.extend(await fixture_state(config, fixture, endpoints=endpoints))
    return lines


def blocking(lines: list[str]) -> bool:
    """True if a finding forbids starting a run until someone acts (a fixture not safe)."""
    return any(line.startswith("NOT SAFE") for line in lines)
