"""One run from the command line or the UI: config → plan → (simulator) → instruments → record.

Order matters for safety: everything that can be checked without hardware (config, plan,
variant, release, faults) is checked before any instrument is opened; once anything is open,
every exit goes through the sequencer's safe state.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from station.config import SIM_CONFIG, LoadedConfig, load_config
from station.diagnostics import InputError, Problem
from station.engine.sequencer import Sequencer
from station.events import Event
from station.instruments import InstrumentSetupError, StationInstruments
from station.plan.bind import bind_plan
from station.plan.loader import load_plan
from station.plan.tree import BoundPlan

EXIT = {"PASS": 0, "FAIL": 1, "ERROR": 3, "ABORTED": 3}
EXIT_REFUSED = 3  # the start-up check found the fixture not safe: no run was started


class RunRefused(Exception):
    """The start-up check forbids a run (``station.startup.blocking``): nothing was switched,
    no run was recorded. ``lines`` is the whole report; ``str()`` the findings that block."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("; ".join(line for line in lines if line.startswith("NOT SAFE")))


@dataclass
class RunRequest:
    plan: str | None
    serial: str = "SN0001"
    variant: str | None = None
    fixture: str | None = None
    operator: str = ""
    sim: bool = False
    station: str | None = None
    faults: list[str] = field(default_factory=list)
    db: str | None = None
    json: str | None = None
    junit: str | None = None
    report: str | None = None
    answers: dict[str, str] = field(default_factory=dict)
    stop_on_failure: bool = False  # end main at the first failed step (CI fault runs)


@dataclass
class Prepared:
    """Everything checked before any instrument is touched."""

    config: LoadedConfig
    bound: BoundPlan
    fixture: str
    faults: list[tuple[str, dict[str, str]]]


def _problem(where: str, message: str) -> InputError:
    return InputError([Problem(where, 1, 1, message)])


def prepare(req: RunRequest) -> Prepared:
    """Load config and plan, pick fixture and variant, check release and faults. Raises InputError."""
    if req.station:
        config = load_config(req.station)
    elif req.sim:
        config = load_config(SIM_CONFIG)
    else:
        raise _problem("station", "no station config: give --station FILE, or --sim to run against the simulator")
    fixture = req.fixture or config.fixture_ids()[0]
    if fixture not in config.config.fixtures:
        raise _problem(str(config.path), f"no fixture '{fixture}'; fixtures: {', '.join(config.fixture_ids())}")
    plan_path, variant = req.plan, req.variant
    # the scan is checked against the catalogue's serial rules before anything is switched;
    # req.serial becomes the normalised serial (scanner prefix/suffix, GS1 label → AI 21)
    from station.serials import SerialRefused

    try:
        req.serial = config.check_serial(req.serial, require_product=plan_path is None).serial
    except SerialRefused as err:
        raise _problem("--serial", f"this is not a pack serial: {err}") from None
    product = config.product_for(req.serial)
    if plan_path is None:
        if product is None:
            raise _problem(str(config.path), f"serial '{req.serial}' matches no product pattern and no plan was given")
        plan_path = str(config.resolve_path(product.plan))
    if variant is None and product is not None and Path(plan_path).resolve() == config.resolve_path(product.plan).resolve():
        variant = product.variant
    loaded = load_plan(plan_path)
    bound = bind_plan(loaded, variant, config.roles(fixture))
    if config.config.mode == "production":
        _check_release(config, bound)
    faults = [parse_fault(text) for text in req.faults]
    if faults and not req.sim:
        raise _problem("--fault", "faults can only be injected into the simulator (--sim)")
    from station.security.roles import authorize

    # roles are enforced here, in the engine's path, not only in the UI
    authorize(config, req.operator, plan_path=loaded.path, plan_sha256=bound.release_sha256,
              variant=bound.variant, faults=faults, sim=req.sim)
    if faults:
        from sim.faults import check_fault

        problems = [Problem("--fault", 1, 1, msg) for name, params in faults if (msg := check_fault(name, params))]
        if problems:
            raise InputError(problems)
    return Prepared(config, bound, fixture, faults)


def _check_release(config: LoadedConfig, bound: BoundPlan) -> None:
    from station.security.roles import release_problem

    problem = release_problem(config, bound.path, bound.release_sha256)
    if problem:
        raise _problem(bound.path, f"{problem}; production mode runs released plans only")


def parse_fault(text: str) -> tuple[str, dict[str, str]]:
    """``NAME[:k=v,...]`` → (name, params)."""
    name, _, rest = text.partition(":")
    params: dict[str, str] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise _problem("--fault", f"bad fault parameter {item!r} in {text!r}; use NAME:k=v,k2=v2")
        params[key.strip()] = value.strip()
    return name.strip(), params


def sim_preset(prep: Prepared) -> str:
    from sim.pack.presets import PRESETS

    variant = prep.bound.variant
    if variant in PRESETS:
        return variant
    return prep.config.config.fixtures[prep.fixture].sim_preset or "car-400"


class Session:
    """A station at work: result store, instruments and (with ``sim``) the simulated bench.

    Several fixtures may run at once in one session; shared instruments are opened once and
    serialised by the engine. ``presets`` picks each simulated fixture's pack preset.
    """

    def __init__(self, config: LoadedConfig, *, sim: bool, presets: dict[str, str] | None = None,
                 db: str | None = None) -> None:
        self.config = config
        self.sim = sim
        self.presets = presets or {}
        self.db = Path(db) if db else config.resolve_path(config.config.results.db)
        self.bench = None
        self.store = None
        self.instruments: StationInstruments | None = None
        self.line = None  # LineServices: PostgreSQL forwarding, MQTT status, MES

    async def __aenter__(self) -> "Session":
        from station.results.store import ResultStore

        endpoints = None
        if self.sim:
            from sim.bench import SimBench

            fixtures = {f: self.presets.get(f) or self.config.config.fixtures[f].sim_preset or "car-400"
                        for f in self.config.fixture_ids()}
            self.bench = SimBench(fixtures)
            endpoints = await self.bench.start()
        try:
            self.store = ResultStore(self.db, synchronous=self.config.config.results.synchronous).open()
        except BaseException:
            if self.bench is not None:
                await self.bench.stop()
            raise
        self.instruments = StationInstruments(self.config, endpoints)
        cfg = self.config.config
        if cfg.results.postgres_url or cfg.mqtt or cfg.mes:
            from station.line.services import LineServices  # psycopg/paho only when configured

            self.line = LineServices.from_config(self.config, self.db).start()
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            if self.instruments is not None:
                for line in await self.instruments.close():
                    print(f"warning: {line}", file=sys.stderr)
            if self.line is not None:  # what is not uploaded in 2 s stays queued locally
                await asyncio.get_running_loop().run_in_executor(None, self.line.stop, 2.0)
        finally:
            if self.store is not None:
                self.store.close()
            if self.bench is not None:
                await self.bench.stop()

    async def startup_report(self, fixtures: list[str] | None = None) -> list[str]:
        """Interrupted runs in the store and each fixture's safe-state check (``station.startup``)."""
        from station.startup import startup_report

        assert self.instruments is not None and self.store is not None
        return await startup_report(self.config, self.store, endpoints=self.instruments.endpoints, fixtures=fixtures)

    def _audit_abort(self, seq: Sequencer, req: RunRequest, prep: Prepared) -> None:
        _audit_abort_entry(self.config, seq, req, prep)

    async def run(self, req: RunRequest, prep: Prepared, *, subscribers: list[Callable[[Event], None]] | None = None,
                  prompt_handler=None, on_sequencer: Callable[[Sequencer], None] | None = None,
                  signals: bool = True) -> tuple[str, str, Any]:
        """Run one pack on ``prep.fixture``; return (verdict, run_id, record)."""
        assert self.instruments is not None and self.store is not None
        decision = None
        if self.line is not None:
            from station.line.services import RouteRefused

            try:
                decision = await self.line.route_check(req.serial, self.config.config.station_id, prep.bound.plan.id)
            except RouteRefused as err:
                raise _problem("MES", str(err)) from None
            subscribers = [*(subscribers or []), *self.line.subscribers]
        if self.bench is not None:
            self.bench.renew(prep.fixture)
        fx = self.instruments.build(prep.fixture)
        seq = Sequencer(
            prep.bound, fx.drivers, serial=req.serial, operator=req.operator,
            station_id=self.config.config.station_id, fixture_id=prep.fixture, identities=fx.infos,
            subscribers=subscribers, critical=[self.store.handle], prompt_handler=prompt_handler,
            locks=self.instruments.locks_for(fx), simulated=self.sim, faults=list(req.faults),
            interlock_period=self.config.config.interlock_period,
            stop_on_failure=req.stop_on_failure,
            mes_transaction_id=decision.transaction_id if decision else None,
        )
        if on_sequencer:
            on_sequencer(seq)
        loop = asyncio.get_running_loop()
        installed = _install_signals(loop, seq) if signals else []
        try:
            try:
                await self.instruments.open(fx)
            except InstrumentSetupError as err:
                seq.preflight_error = str(err)
                seq.instruments = self.instruments.opened(fx)
            if self.bench is not None and not seq.preflight_error:
                from sim.faults import arm_faults

                arm_faults(self.bench, prep.fixture, prep.faults)
            verdict = await seq.run()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
        if seq.abort_reason is not None:
            await loop.run_in_executor(None, self._audit_abort, seq, req, prep)
        record = self.store.record(seq.run_id)
        self.instruments.note_run(fx, record)  # what this run lost is re-opened before the next
        export(req, record)
        if self.line is not None:
            await self.line.after_run(record, decision)
        return verdict, seq.run_id, record


def _audit_abort_entry(config: LoadedConfig, seq: Sequencer, req: RunRequest, prep: Prepared) -> None:
    from station.security.audit import AuditLog, audit_path

    reason = seq.abort_reason
    AuditLog(audit_path(config)).append(
        "abort", run_id=seq.run_id, serial=req.serial, fixture=prep.fixture, operator=req.operator,
        plan=str(prep.bound.path), source=reason.source, reason=reason.reason)


async def execute(req: RunRequest, prep: Prepared, *, subscribers: list[Callable[[Event], None]] | None = None,
                  prompt_handler=None, on_sequencer: Callable[[Sequencer], None] | None = None,
                  on_startup: Callable[[list[str]], None] | None = None) -> tuple[str, str, Any]:
    """One run in its own session (the CLI's ``station run``).

    With ``on_startup``, the start-up check of ``station.startup`` runs first (interrupted runs,
    the run's fixture's safe state), its lines go to ``on_startup``, and a finding that blocks
    raises ``RunRefused`` before any instrument is opened.
    """
    presets = {prep.fixture: sim_preset(prep)} if req.sim else None
    async with Session(prep.config, sim=req.sim, presets=presets, db=req.db) as session:
        if on_startup is not None:
            from station.startup import blocking

            lines = await session.startup_report([prep.fixture])
            on_startup(lines)
            if blocking(lines):
                raise RunRefused(lines)
        return await session.run(req, prep, subscribers=subscribers, prompt_handler=prompt_handler,
                                 on_sequencer=on_sequencer)


def _install_signals(loop: asyncio.AbstractEventLoop, seq: Sequencer) -> list[int]:
    installed = []
    for sig, name in ((signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")):
        try:
            loop.add_signal_handler(sig, lambda n=name: seq.abort(f"{n} received", source="signal"))
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (UI workers)
            pass
    return installed


def export(req: RunRequest, record: dict) -> None:
    if req.json:
        from station.results.export_json import write_json

        write_json(record, req.json)
    if req.junit:
        from station.results.junit import write_junit

        write_junit(record, req.junit)
    if req.report:
        from station.results.html_report import write_html

        write_html(record, req.report)
