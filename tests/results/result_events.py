"""Synthetic event sequences for the result-store tests, built from station.events.

A plain module (not conftest) so test files import it by a name no other directory uses.
"""

from __future__ import annotations

import datetime as dt

from station.events import (
    InstrumentIdentified,
    InstrumentInfo,
    LogMessage,
    MeasurementTaken,
    MonitorTripped,
    PromptAnswered,
    PromptRequested,
    RunFinished,
    RunStarted,
    SafeStateAction,
    SeriesRecorded,
    StepFinished,
    StepStarted,
)

T0 = dt.datetime(2026, 11, 25, 8, 0, 0, tzinfo=dt.UTC)
SHA = "9f" * 32
SERIAL = "PK-0001<&>\"x\""  # scanners deliver anything: must be escaped everywhere


class Clock:
    """Stamps events like the sequencer: utc = start + t."""

    def __init__(self, run_id: str) -> None:
        self.run_id, self.t = run_id, 0.0

    def __call__(self, dt_s: float = 0.1) -> tuple[str, str, float]:
        self.t = round(self.t + dt_s, 6)
        utc = (T0 + dt.timedelta(seconds=self.t)).isoformat(timespec="milliseconds")
        return self.run_id, utc, self.t


def run_started(c: Clock, serial: str = SERIAL) -> RunStarted:
    return RunStarted(
        *c(0.0), serial=serial, plan_id="pack-eol", plan_version="3.2.0",
        plan_title="Traction pack EOL", plan_path="test_plans/pack_eol.yaml", plan_sha256=SHA,
        variant="bus-700", parameters={"v_max": "800 V", "bond_points": ["BP1", "BP2"]},
        station_id="EOL-1", fixture_id="F1", operator="op7", software_version="0.1.0",
        simulated=True, faults=["iso_low:r=4e7"], planned_steps=7)


def step(c: Clock, path: str, outcome: str, *measurements: tuple, attempt: int = 1,
         error: str | None = None, action: str = "do.it", series: tuple | None = None) -> list:
    """StepStarted, its measurements ``(name, value, unit, limits, verdict)``, StepFinished."""
    phase = path.split("/")[0]
    step_id = path.rsplit("/", 1)[-1]
    out = [StepStarted(*c(), path=path, step_id=step_id, name=step_id.replace("_", " "),
                       action=action, phase=phase, attempt=attempt)]
    for name, value, unit, limits, verdict in measurements:
        out.append(MeasurementTaken(*c(), path=path, name=name, value=value, unit=unit,
                                    limits=limits, verdict=verdict, text=f"{name} {value} {unit}"))
    if series:
        out.append(SeriesRecorded(*c(), path=path, name=series[0], columns=series[1],
                                  rows=series[2]))
    out.append(StepFinished(*c(1.0), path=path, step_id=step_id, outcome=outcome,
                            duration_s=1.0, attempt=attempt, error=error))
    return out


CELLS = [[i + 1, 3.30 + 0.001 * (i % 7)] for i in range(24)]
CELLS[13][1] = 3.70  # one cell above the 3.65 V limit
PULSE = [[0.1 * i, 700 - (5.0 if 20 <= i < 120 else 0.0) + 0.01 * i,
          (-200.0 if 20 <= i < 120 else 0.0)] for i in range(200)]
SETTLE = [[0.5 * i, 5e8 * (1 - 0.8 * 0.7**i)] for i in range(40)]


def full_run(run_id: str = "run-full-0001") -> list:
    """A FAIL run touching every event type and every outcome."""
    c = Clock(run_id)
    ev = [run_started(c)]
    for role, driver, model, due, shared in (
            ("cycler", "itech_it6000", "IT6015C-80-450", "2027-03-01", False),
            ("safety_tester", "chroma_19032", "19032", "2026-01-01", True),
            ("dmm", "keysight_34465a", "34465A", None, False)):
        ev.append(InstrumentIdentified(*c(), info=InstrumentInfo(
            role=role, driver=driver, resource=f"TCPIP::127.0.0.1::{5025}::SOCKET", maker="ACME",
            model=model, serial=f"SN-{role}", firmware="1.2.3", calibration_due=due,
            shared=shared)))
    ev += step(c, "setup/require", "passed", ("pack_present", True, "", {"equals": True}, "pass"))
    ev += step(c, "main/bond[BP1]/bond_res", "passed",
               ("resistance", 0.042, "ohm", {"max": 0.1}, "pass"))
    ev += step(c, "main/bond[BP2]/bond_res", "failed",
               ("resistance", 0.142, "ohm", {"max": 0.1}, "fail"))
    ev += step(c, "main/isolation/iso_plus", "passed",
               ("resistance", 5.23e8, "ohm", {"min": 8e4, "production_min": 5e8}, "pass"),
               series=("ir_settling", ["t_s", "resistance_ohm"], SETTLE))
    ev += step(c, "main/dcir", "error", attempt=1, error="InstrumentTimeout: cycler: no reply")
    ev += step(c, "main/dcir", "passed", ("dcir", 0.035, "ohm", {"min": 0.02, "max": 0.06},
                                          "pass"), attempt=2,
               series=("dcir_pulse", ["t_s", "voltage_V", "current_A"], PULSE))
    ev += step(c, "main/cells", "failed",
               ("cell_voltage_max", 3.70, "V", {"max": 3.65}, "fail"),
               ("cell_voltage_min", 3.30, "V", {"min": 2.5}, "pass"),
               ("bms_sw", "1.2.3", "", {"equals": "1.2.3"}, "pass"),
               series=("cell_voltages", ["cell", "voltage_V"], CELLS))
    ev.append(PromptRequested(*c(), "main/confirm", "confirm", "Label applied?", None))
    ev.append(PromptAnswered(*c(), path="main/confirm", answer="yes"))
    ev += step(c, "main/optional_leak", "skipped")
    ev.append(LogMessage(*c(), level="warning", message="fixture contact cycles 9,800 of 10,000"))
    ev += step(c, "teardown/cycler_off", "passed")
    ev.append(SafeStateAction(*c(), instrument="cycler", action="output off", ok=True))
    ev.append(SafeStateAction(*c(), instrument="bms", action="open contactors", ok=False,
                              error="StaleSignalError: bms: no 0x220 for 0.3 s"))
    ev.append(RunFinished(*c(), verdict="FAIL", reason="2 measurements out of limits",
                          duration_s=c.t))
    return ev


def aborted_run(run_id: str = "run-abort-0002") -> list:
    """All steps pass, then a monitor trips between steps: ABORTED with no failing step."""
    c = Clock(run_id)
    ev = [run_started(c, serial="PK-0002")]
    ev += step(c, "main/charge", "passed", ("ah", 1.5, "Ah", {"min": 1.0}, "pass"))
    ev.append(MonitorTripped(*c(), path="main", signal="bms.cell_temperature_max", value=47.5,
                             limit="max 45 degC"))
    ev.append(SafeStateAction(*c(), instrument="cycler", action="output off", ok=True))
    ev.append(RunFinished(*c(), verdict="ABORTED", reason="monitor bms.cell_temperature_max",
                          duration_s=c.t))
    return ev
