"""One run from the command line or the UI: config → plan → (simulator) → instruments → record.

Order matters for safety: everything that can be checked without hardware (config, plan,
variant, release, faults) is checked before any instrument is opened; once anything is open,
every exit goes through the sequencer's safe state.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.base.diagnostics import InputError, Problem
from station.config import SIM_CONFIG, LoadedConfig, load_config
from station.engine.parts import Instruments, Opened, Outlets, RunInfo
from station.engine.sequencer import Sequencer
from station.events import Event
from station.instruments import FixtureInstruments, InstrumentSetupError, StationInstruments
from station.plan.bind import bind_plan
from station.plan.loader import load_plan
from station.plan.tree import BoundPlan
from station.safetext import printable
from station.signals import StopSignals

EXIT = {"PASS": 0, "FAIL": 1, "ERROR": 3, "ABORTED": 3}
EXIT_REFUSED = 3  # the start-up check found the fixture not safe: no run was started
EXIT_LINE_REFUSED = 4  # the MES refused the serial, or could not answer the route check


class RunRefused(Exception):
    """The start-up check forbids a run (``station.startup.blocking``): no plan step ran,
    no run was recorded. ``lines`` is the whole report; ``str()`` the findings that block."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("; ".join(line for line in lines if line.startswith("NOT SAFE")))


class LineRefused(InputError):
    """The line refused the run (exit 4): the MES said no, or could not answer the route
    check. Asked before any instrument is opened: nothing was touched, no run was recorded.
    An ``InputError`` too, so callers that show input problems show this one."""

    def __init__(self, message: str) -> None:
        super().__init__([Problem("MES", 1, 1, message)])
        self.message = message


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
    auth: Any = None  # station.security.users.Authenticated: production needs it for ``operator``


@dataclass
class Prepared:
    """Everything checked before any instrument is touched."""

    config: LoadedConfig
    bound: BoundPlan
    fixture: str
    faults: list[tuple[str, dict[str, str]]]
    release: tuple[str, str] = ("", "")  # (trusted key id, signature) the content runs under
    pack: Any = None  # sim.pack.catalogue.PackDefinition the simulated run gets (None: hardware)


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
    from station.security import provenance
    from station.security.audit import AuditLog, audit_path

    # Refusals below are audited beside the store this run would write (security/provenance.py).
    audit = AuditLog(audit_path(config, req.db))
    # the scan is checked against the catalogue's serial rules before anything is switched;
    # req.serial becomes the normalised serial (scanner prefix/suffix, GS1 label → AI 21)
    from station.serials import SerialRefused, run_serial

    try:
        req.serial = run_serial(config, req.serial, require_product=req.plan is None)
    except SerialRefused as err:  # audited: a forged or foreign serial is an integrity event too
        raise provenance.refuse(audit, "serial refused", "--serial", str(err), operator=req.operator.strip(),
                                serial=printable(err.scan)[:80], station=config.config.station_id) from None
    who = {"operator": req.operator.strip(), "serial": printable(req.serial), "station": config.config.station_id}
    provenance.check_store_mode(config, Path(req.db) if req.db else config.resolve_path(config.config.results.db),
                                audit, **who)
    provenance.check_authenticated(config, req.auth, audit, **who)
    fixture = req.fixture or config.fixture_ids()[0]
    if fixture not in config.config.fixtures:
        raise _problem(str(config.path), f"no fixture '{fixture}'; fixtures: {', '.join(config.fixture_ids())}")
    plan_path, variant = req.plan, req.variant
    product = config.product_for(req.serial)
    if plan_path is None:
        if product is None:
            raise _problem(str(config.path), f"serial '{req.serial}' matches no product pattern and no plan was given")
        plan_path = str(config.resolve_path(product.plan))
    if variant is None and product is not None and Path(plan_path).resolve() == config.resolve_path(product.plan).resolve():
        variant = product.variant
    from station.instruments import check_fixture

    # driver keys, resources, options, maps (--sim: the files) before any copper; what each offers
    offers = check_fixture(config, fixture, sim=req.sim)
    loaded = load_plan(plan_path)
    bound = bind_plan(loaded, variant, config.roles(fixture), offers)
    release = provenance.check_release(config, bound, audit, **who)
    faults = [parse_fault(text) for text in req.faults]
    if faults and not req.sim:
        raise _problem("--fault", "faults can only be injected into the simulator (--sim)")
    from station.security.manifest import release_digest
    from station.security.roles import authorize

    # roles are enforced here, in the engine's path, not only in the UI
    try:
        authorize(config, req.operator, plan_path=loaded.path, plan_sha256=release_digest(config, bound),
                  variant=bound.variant, faults=faults, sim=req.sim)
    except InputError as err:
        raise provenance.refuse(audit, "role denied", err.problems[0].file, err.problems[0].message,
                                plan=str(loaded.path), **who) from None
    if faults:
        from sim.faults import check_fault

        problems = [Problem("--fault", 1, 1, msg) for name, params in faults if (msg := check_fault(name, params))]
        if problems:
            raise InputError(problems)
    pack = None
    if req.sim:
        from station.simpack import run_pack

        pack = run_pack(config, fixture, bound.variant, req.serial)
        if faults:  # a fault that cannot reach this pack would be recorded as injected, changing nothing
            from sim.faults import fault_reach

            problems = [Problem("--fault", 1, 1, f"{msg} (variant {bound.variant or '-'}, pack {pack.name})")
                        for name, params in faults if (msg := fault_reach(name, params, pack.spec, bound.roles))]
            if problems:
                raise InputError(problems)
    return Prepared(config, bound, fixture, faults, release, pack)


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


def sim_preset(prep: Prepared):
    """The simulated pack (``PackDefinition``) of a prepared run; InputError when none fits."""
    if prep.pack is not None:
        return prep.pack
    from station.simpack import run_pack

    return run_pack(prep.config, prep.fixture, prep.bound.variant)


class Session:
    """A station at work: result store, instruments and (with ``sim``) the simulated bench.

    Several fixtures may run at once in one session; shared instruments are opened once and
    serialised by the engine. ``presets`` picks each simulated fixture's pack (a shipped pack's
    name or a ``PackDefinition``; default: the fixture's ``sim_preset``).
    """

    def __init__(self, config: LoadedConfig, *, sim: bool, presets: dict[str, Any] | None = None,
                 db: str | None = None, fixtures: list[str] | None = None) -> None:
        self.config = config
        self.fixtures = fixtures  # the fixtures this process drives (MQTT retained state)
        self.sim = sim
        self.presets = presets or {}
        self.db = Path(db) if db else config.resolve_path(config.config.results.db)
        self.bench = None
        self.store = None
        self.instruments: StationInstruments | None = None
        self.line = None  # LineServices: PostgreSQL forwarding, MQTT status, MES
        self.stop_signals: StopSignals | None = None  # set by whoever catches the stop signals
        from station.security.audit import AuditLog, audit_path

        self.audit = AuditLog(audit_path(config, self.db))  # beside the store (no I/O until used)
        self.startup_checks: dict[str, Any] = {}  # fixture -> its last start-up check, for the next run's record

    async def __aenter__(self) -> Session:
        from station.results.store import ResultStore

        endpoints = None
        if self.sim:
            from station.simpack import sim_bench

            self.bench = sim_bench(self.config, self.presets)
            endpoints = await self.bench.start()
        from station.results.store import StoreModeError
        from station.security import provenance

        try:
            try:
                self.store = ResultStore(self.db, synchronous=self.config.config.results.synchronous,
                                         mode=self.config.config.mode).open()
            except StoreModeError as err:  # prepare() checked; this catches a store claimed since
                raise provenance.refuse(self.audit, "store mode mismatch", self.db, str(err),
                                        store_mode=err.store_mode, station_mode=err.station_mode) from None
            provenance.note_config_change(self.config, self.store, self.audit)
        except BaseException:
            if self.store is not None:
                self.store.close()
                self.store = None
            if self.bench is not None:
                await self.bench.stop()
            raise
        self.instruments = StationInstruments(self.config, endpoints)
        cfg = self.config.config
        if cfg.results.postgres_url or cfg.mqtt or cfg.mes or getattr(cfg, "opcua", None):
            from station.line.services import LineServices  # psycopg/paho only when configured

            try:
                self.line = LineServices.from_config(self.config, self.db, self.fixtures)
                self.line.start()
            except Exception as err:  # a line setting that cannot work (TLS file, env var, port)
                await self.__aexit__(None, None, None)
                raise _problem("line", str(err)) from None
        return self

    async def __aexit__(self, *exc) -> None:
        try:
            if self.instruments is not None:
                for line in await self.instruments.close():
                    print(f"warning: {line}", file=sys.stderr)
            if self.line is not None:  # what is not uploaded in 2 s stays queued locally
                for line in await asyncio.get_running_loop().run_in_executor(None, self.line.stop, 2.0):
                    print(f"warning: {line}", file=sys.stderr)
        finally:
            if self.store is not None:
                self.store.close()
            if self.bench is not None:
                await self.bench.stop()

    async def startup_report(self, fixtures: list[str] | None = None, *, operator: str = "") -> list[str]:
        """Interrupted runs in the store, then each fixture's start-up check (``station.startup``)
        on the session's own instruments: read back, anything energised made safe and read back
        again, latches cleared once safe. The checks go into the fixture's next run's record."""
        from station.startup import startup

        assert self.instruments is not None and self.store is not None
        lines, checks = await startup(self.config, self.store, self.instruments,
                                      fixtures or self.config.fixture_ids(), act=True, operator=operator)
        self.startup_checks.update(checks)
        return lines

    async def _open(self, fx: FixtureInstruments, prep: Prepared) -> Opened:
        """Open and identify the fixture's instruments (the run's first act); with the simulator,
        then arm the run's faults. One that cannot be opened: the run records why and goes safe
        on those that did open."""
        assert self.instruments is not None
        try:
            await self.instruments.open(fx)
        except InstrumentSetupError as err:
            return Opened(self.instruments.opened(fx), list(fx.infos), str(err))
        if self.bench is not None:
            from sim.faults import arm_faults

            arm_faults(self.bench, prep.fixture, prep.faults)
        return Opened(fx.drivers, list(fx.infos))

    def _audit_abort(self, seq: Sequencer, req: RunRequest, prep: Prepared) -> None:
        _audit_abort_entry(self.audit, seq, req, prep)

    async def run(self, req: RunRequest, prep: Prepared, *, subscribers: list[Callable[[Event], None]] | None = None,
                  prompt_handler=None, on_sequencer: Callable[[Sequencer], None] | None = None,
                  signals: bool = True) -> tuple[str, str, Any]:
        """Run one pack on ``prep.fixture``; return (verdict, run_id, record)."""
        assert self.instruments is not None and self.store is not None
        held = self.bench.fixtures[prep.fixture].definition if self.bench is not None else None
        if held is not None and prep.pack is not None and (prep.pack.name, prep.pack.sha256) != (held.name, held.sha256):
            # never a stand-in: the plan would judge one pack against another's physics
            raise _problem(str(self.config.path), f"fixture {prep.fixture} holds the simulated {held.name} pack; "
                                                  f"variant {prep.bound.variant} is the {prep.pack.name} pack")
        decision = None
        if self.line is not None:
            from station.line.services import RouteRefused, RouteUnanswered

            try:
                decision = await self.line.route_check(req.serial, self.config.config.station_id, prep.bound.plan.id)
            except (RouteRefused, RouteUnanswered) as err:
                raise LineRefused(str(err)) from None
            subscribers = [*(subscribers or []), *self.line.subscribers]
        if self.bench is not None:
            self.bench.renew(prep.fixture)
        fx = self.instruments.build(prep.fixture)
        journal = self.store.handle
        check = self.startup_checks.pop(prep.fixture, None)
        if check is not None:
            from station.startup_record import journal_with_startup

            journal = journal_with_startup(journal, check)
        from station.security.provenance import fields as provenance_fields

        provenance = provenance_fields(self.config, prep.release, self.audit)  # into RunStarted
        if self.bench is not None and self.bench.fixtures[prep.fixture].definition is not None:
            pack = self.bench.fixtures[prep.fixture].definition
            # the record names the pack model the run was simulated with (name, sha256 of its file)
            provenance = {**provenance, "sim_pack": pack.name, "sim_pack_sha256": pack.sha256}
        info = RunInfo(
            serial=req.serial, operator=req.operator, station_id=self.config.config.station_id,
            fixture_id=prep.fixture, simulated=self.sim, faults=tuple(req.faults),
            mes_transaction_id=decision.transaction_id if decision else None, provenance=provenance,
        )
        instruments = Instruments(opener=functools.partial(self._open, fx, prep), locks=self.instruments.locks_for(fx),
                                  interlock_period=self.config.config.interlock_period)
        seq = Sequencer(prep.bound, instruments, info,
                        Outlets(critical=[journal], subscribers=subscribers or (), prompt_handler=prompt_handler),
                        stop_on_failure=req.stop_on_failure)
        if on_sequencer:
            on_sequencer(seq)
        loop = asyncio.get_running_loop()
        stops = self.stop_signals
        own = StopSignals() if stops is None and signals else None
        if own is not None:
            stops = own.__enter__()
        if stops is not None:
            stops.attach(seq)
        try:
            verdict = await seq.run()
        finally:
            if stops is not None:
                stops.detach(seq)
            if own is not None:
                own.__exit__(None, None, None)
        if seq.abort_reason is not None:
            await loop.run_in_executor(None, self._audit_abort, seq, req, prep)
        record = self.store.record(seq.run_id)
        self.instruments.note_lost(fx, seq.lost)  # what this run lost is re-opened before the next
        export(req, record)
        if self.line is not None:  # queued for the MES: never changes the verdict
            import sqlite3  # the journal holds the MES outbox

            try:
                await self.line.after_run(record, decision)
            except sqlite3.Error as err:
                print(f"warning: MES upload of run {seq.run_id} not queued ({err}); the record "
                      f"is in the journal", file=sys.stderr)
        return verdict, seq.run_id, record


def _audit_abort_entry(audit, seq: Sequencer, req: RunRequest, prep: Prepared) -> None:
    reason = seq.abort_reason
    audit.append(
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
    # Signals are caught from before the first instrument opens until the last is closed: a
    # signal during the start-up check stops the run as soon as it begins (through the safe
    # state), and one during the export or the close is noted instead of killing the process.
    # ``fixtures``: this process claims only its own fixture (MQTT state, start-up check).
    with StopSignals() as stops:
        async with Session(prep.config, sim=req.sim, presets=presets, db=req.db, fixtures=[prep.fixture]) as session:
            session.stop_signals = stops
            return await _startup_and_run(session, req, prep, subscribers, prompt_handler, on_sequencer, on_startup)


async def _startup_and_run(session: Session, req: RunRequest, prep: Prepared, subscribers, prompt_handler,
                           on_sequencer, on_startup) -> tuple[str, str, Any]:
    if on_startup is not None:
        from station.startup import blocking

        lines = await session.startup_report([prep.fixture], operator=req.operator)
        on_startup(lines)
        if blocking(lines):
            session.audit.append("refusal", what="start-up not safe", operator=req.operator.strip(),
                                 serial=req.serial, fixture=prep.fixture, findings=lines)
            raise RunRefused(lines)
    return await session.run(req, prep, subscribers=subscribers, prompt_handler=prompt_handler,
                             on_sequencer=on_sequencer)


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
