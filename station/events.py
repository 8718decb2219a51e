"""Events the sequencer emits (past tense). Subscribers: journal, UI, CLI view, exporters.

Every event carries ``run_id`` and ``utc`` (ISO 8601, UTC, on the station clock: the run's
real start time plus elapsed station time, so virtual runs get consistent stamps) and ``t``
(station seconds since the run started). Step paths name a step instance uniquely within a
run, e.g. ``main/bond[BP2]/bond_res`` or ``teardown/cycler_off``.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, TypeVar


@dataclass(frozen=True)
class Event:
    run_id: str
    utc: str
    t: float

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind
        return data


@dataclass(frozen=True)
class InstrumentInfo:
    role: str
    driver: str
    resource: str
    maker: str = ""
    model: str = ""
    serial: str = ""
    firmware: str = ""
    calibration_due: str | None = None  # ISO date
    shared: bool = False


@dataclass(frozen=True)
class RunStarted(Event):
    serial: str
    plan_id: str
    plan_version: str
    plan_title: str
    plan_path: str
    plan_sha256: str
    variant: str | None
    parameters: dict[str, Any]  # resolved, JSON-able (quantities as "800 V")
    station_id: str
    fixture_id: str
    operator: str
    software_version: str
    simulated: bool
    faults: list[str] = field(default_factory=list)
    planned_steps: int = 0  # leaf steps known before the run (for progress)
    mes_transaction_id: str | None = None  # from the MES route check, kept with the record
    plan_libraries: dict[str, str] = field(default_factory=dict)  # included file -> sha256
    plan_release_sha256: str = ""  # BoundPlan.release_sha256: what a release of this content records
    # Provenance (station.security.provenance): what the station was when it ran this pack.
    station_mode: str = ""  # development | production ("" = not known: a caller that gave none)
    config_sha256: str = ""  # sha256 of the station config file's bytes
    release_key: str = ""  # id of the trusted key whose signature released this content ("" = none)
    release_signature: str = ""  # that Ed25519 signature, base64
    audit_head: str = ""  # hash of the audit log's last entry at run start (anchors the chain)
    sim_pack: str | None = None  # simulated runs: the pack definition's name
    sim_pack_sha256: str | None = None  # ... and the sha256 of its file


@dataclass(frozen=True)
class InstrumentIdentified(Event):
    info: InstrumentInfo


@dataclass(frozen=True)
class StepStarted(Event):
    path: str
    step_id: str
    name: str
    action: str
    phase: str  # setup | main | teardown | safe
    attempt: int = 1


@dataclass(frozen=True)
class MeasurementTaken(Event):
    path: str
    name: str
    value: Any  # float, int, bool or str
    unit: str
    limits: dict[str, Any]  # e.g. {"min": 0.0, "max": 0.1} or {"equals": "1.2.3"}; SI values
    verdict: str  # pass | fail | marginal
    text: str = ""  # human rendering "0.042 ohm in [0, 0.1] ohm"


@dataclass(frozen=True)
class SeriesRecorded(Event):
    """A recorded time series for plots (e.g. DCIR pulse V/I, IR settling, precharge)."""

    path: str
    name: str
    columns: list[str]  # e.g. ["t_s", "voltage_V", "current_A"]
    rows: list[list[float]]


@dataclass(frozen=True)
class StepFinished(Event):
    path: str
    step_id: str
    outcome: str  # passed | failed | error | skipped | aborted
    duration_s: float
    attempt: int = 1
    error: str | None = None  # error type and message, for error/aborted


@dataclass(frozen=True)
class MonitorTripped(Event):
    path: str  # the group the monitor covers
    signal: str
    value: float
    limit: str


@dataclass(frozen=True)
class PromptRequested(Event):
    path: str
    style: str  # message | confirm | input
    message: str
    pattern: str | None = None


@dataclass(frozen=True)
class PromptAnswered(Event):
    path: str
    answer: str


# How a safe-state line starts when the independent bus reading settles what an instrument
# could not confirm itself (see drivers.capabilities.SafeAction.bus_settles); records read it.
SETTLED_BY_BUS = "settled by the independent bus reading"
SETTLES = " for: "  # between the reading and the settled line's own text


@dataclass(frozen=True)
class SafeStateAction(Event):
    instrument: str
    action: str
    ok: bool  # done without error
    error: str | None = None
    confirmed: bool = False  # acknowledged by the instrument or proved by a read-back


@dataclass(frozen=True)
class StartupChecked(Event):
    """The fixture's start-up check before this run (``station.startup_check.FixtureCheck``):
    each instrument's read-back as first found, what was switched or cleared, the last read-back."""

    fixture: str
    safe: bool
    found: list[dict[str, Any]]  # {instrument, what, safe, detail, latched, left_on}
    done: list[str]
    after: list[dict[str, Any]]


@dataclass(frozen=True)
class LogMessage(Event):
    level: str
    message: str


@dataclass(frozen=True)
class RunFinished(Event):
    verdict: str  # PASS | FAIL | ERROR | ABORTED
    reason: str | None
    duration_s: float


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        RunStarted, InstrumentIdentified, StepStarted, MeasurementTaken, SeriesRecorded,
        StepFinished, MonitorTripped, PromptRequested, PromptAnswered, SafeStateAction,
        LogMessage, RunFinished, StartupChecked,
    )
}

E = TypeVar("E", bound=Event)
_SHAPES: dict[type, tuple[frozenset[str], frozenset[str], dict[str, Any]] | None] = {}


def make(cls: type[E], run_id: str, utc: str, t: float, values: dict[str, Any]) -> E:
    """``cls(run_id=run_id, utc=utc, t=t, **values)``, built without the dataclass ``__init__``.

    A frozen dataclass stores each field through ``object.__setattr__``: ~2,000 instructions
    a field, and the sequencer builds three events per step (callgrind: a StepStarted 20,600 ->
    11,700 instructions; bench_engine 216k -> 186k instructions per step). Anything this cannot
    vouch for (unknown, repeated or missing fields, a ``default_factory``) goes through ``cls(...)``
    and its errors.
    """
    shape = _SHAPES[cls] if cls in _SHAPES else _shape(cls)
    if shape is None or not (shape[0] <= values.keys() <= shape[1]):
        return cls(run_id=run_id, utc=utc, t=t, **values)
    event = object.__new__(cls)
    state = event.__dict__
    state.update(shape[2])  # every field, in declaration order as __init__ sets them: the journal
    state["run_id"], state["utc"], state["t"] = run_id, utc, t  # stores vars(event) as it is
    state.update(values)
    return event


def _shape(cls: type) -> tuple[frozenset[str], frozenset[str], dict[str, Any]] | None:
    """(required, allowed names beyond run_id/utc/t, every field with its default or None in
    declaration order); None when ``make`` must leave it to ``cls(...)``."""
    shape = None
    if "__post_init__" not in dir(cls) and all(f.default_factory is MISSING and f.init for f in fields(cls)):
        own = [f for f in fields(cls) if f.name not in ("run_id", "utc", "t")]
        shape = (frozenset(f.name for f in own if f.default is MISSING), frozenset(f.name for f in own),
                 {f.name: None if f.default is MISSING else f.default for f in fields(cls)})
    _SHAPES[cls] = shape
    return shape

