"""The UI's link to the station core: one ``Session`` on its own event loop in a background thread.

The Textual app owns the terminal's loop; the station (simulated bench, drivers, sequencer, result
store) lives on a second loop in a daemon thread — a ``VirtualTimeLoop`` with ``--sim`` so a run
of simulated minutes takes seconds. The UI never touches a driver: it submits coroutines here and
receives events through callbacks that run on this thread (they must only ``post_message``).

Virtual time jumps whenever no I/O is ready, so a loop with no run in progress (or with every run
waiting for an operator) would race the simulator's cyclic timers flat out. The backend therefore
holds the clock on real time whenever no run is making progress.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from station.clock import StationLoop, VirtualTimeLoop
from station.config import LoadedConfig
from station.events import Event, PromptRequested
from station.instruments import InstrumentSetupError
from station.runner import Prepared, RunRequest, Session

LIVE_SIGNALS = ("pack_voltage", "pack_current", "soc", "cell_voltage_min", "cell_voltage_max",
                "cell_temperature_min", "cell_temperature_max")
LIVE_PERIOD_S = 0.25  # real seconds between live-value refreshes sent to the UI


@dataclass(frozen=True)
class InstrumentRow:
    """One line of the station panel."""

    fixture: str
    role: str
    driver: str
    resource: str
    state: str  # connected | simulated | error | not opened
    identity: str = ""
    calibration_due: str = ""
    problem: str = ""


@dataclass(frozen=True)
class FixtureCheck:
    rows: list[InstrumentRow]
    problems: list[str]  # why a run may not start (empty: ready)
    startup: list[str] = field(default_factory=list)  # the fixture's safe-state check (station.startup)


class StationBackend:
    """A station session on a background loop; every public method is safe from the UI thread."""

    def __init__(self, config: LoadedConfig, *, sim: bool, db: str | None = None) -> None:
        self.config = config
        self.sim = sim
        self.db = db
        self.session: Session | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = concurrent.futures.Future()
        self._sequencers: dict[str, Any] = {}
        self._running = 0
        self._waiting = 0
        self._held = False
        self._live_sinks: dict[str, Callable[[dict[str, float]], None]] = {}
        self._live: dict[str, dict[str, float]] = {}
        self._live_sent: dict[str, float] = {}
        self._listening: set[str] = set()
        self.interrupted: list[str] = []  # runs the store shows interrupted when the session opened

    # -- lifecycle (UI thread) ---------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        """Start the thread and open the session (simulator, result store); raise its error."""
        self._thread = threading.Thread(target=self._main, name="station-session", daemon=True)
        self._thread.start()
        self._ready.result(timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Close the session (instruments, store, simulator) and end the thread. Running packs
        are aborted first and waited for through their safe state: no timeout by default (each
        safe-state action has its own bound), since leaving early would kill the safe state."""
        if self.loop is not None and self._stop is not None and not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # loop already closed
                pass
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, coro: Coroutine) -> concurrent.futures.Future:
        """Schedule a coroutine on the session's loop."""
        if self.loop is None or self.session is None:
            raise RuntimeError("the station session is not running (see the start-up error)")
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def now(self) -> float | None:
        """The station clock (``loop.time()``, virtual with --sim), s; None before the session runs.
        Read from the UI thread for display only."""
        loop = self.loop
        return None if loop is None or loop.is_closed() else loop.time()

    @property
    def busy(self) -> bool:
        return bool(self._sequencers)

    def _main(self) -> None:
        factory = VirtualTimeLoop if self.sim else StationLoop
        try:
            with asyncio.Runner(loop_factory=factory) as runner:
                runner.run(self._serve())
        except BaseException as err:  # surfaces in start() when the session could not open
            if not self._ready.done():
                self._ready.set_exception(err)

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._update_hold()
        async with Session(self.config, sim=self.sim, db=self.db) as session:
            self.session = session
            from station.startup import interrupted_runs

            self.interrupted = interrupted_runs(session.store)
            self._ready.set_result(None)
            await self._stop.wait()
            for seq in self._sequencers.values():  # the app is closing: leave every pack safe
                seq.abort("operator UI closed", source="operator")
            while self._sequencers:
                await asyncio.sleep(0.05)

    # -- clock -------------------------------------------------------------------------------
    def _update_hold(self) -> None:
        """Real time while nothing runs or every run waits for the operator; virtual otherwise."""
        if not isinstance(self.loop, VirtualTimeLoop):
            return
        want = self._running == self._waiting
        if want and not self._held:
            self.loop.hold_real_time()
        elif not want and self._held:
            self.loop.release_real_time()
        self._held = want

    # -- instruments (run on the session loop) ---------------------------------------------
    async def check(self, fixture: str) -> FixtureCheck:
        """Open and identify the fixture's instruments (once; idempotent) and say what blocks a run."""
        assert self.session is not None and self.session.instruments is not None
        instruments = self.session.instruments
        fx = instruments.build(fixture)
        problems: list[str] = []
        error = ""
        try:
            await instruments.open(fx)
        except InstrumentSetupError as err:
            error = str(err)
            problems.append(f"instrument not ready: {err}")
        except Exception as err:  # a driver bug must show as a refusal, not kill the panel
            error = f"{type(err).__name__}: {err}"
            problems.append(f"instrument not ready: {error}")
        problems += [f"past calibration: {p}" for p in instruments.calibration_problems(fx)]
        startup: list[str] = []
        plc = instruments.opened(fx).get("fixture")
        if plc is not None:  # the PLC's outputs as it reports them, through the session's own driver
            from station.startup import plc_state

            startup = await plc_state(fixture, plc)
            problems += [line for line in startup if line.startswith("NOT SAFE")]
        infos = {i.role: i for i in fx.infos}
        rows = []
        for role, (_key, cfg) in self.config.instruments_for(fixture).items():
            info = infos.get(role)
            if info is not None:
                ident = " ".join(x for x in (info.maker, info.model, info.serial, info.firmware) if x)
                rows.append(InstrumentRow(fixture, role, cfg.driver, info.resource,
                                          "simulated" if self.sim else "connected", ident,
                                          info.calibration_due or ""))
            else:
                failed = error.startswith(f"{role} (")
                rows.append(InstrumentRow(fixture, role, cfg.driver, cfg.resource,
                                          "error" if failed else "not opened",
                                          calibration_due=str(cfg.calibration_due or ""),
                                          problem=error if failed else ""))
        self._listen(fixture, fx.drivers.get("bms"))
        return FixtureCheck(rows, problems, startup)

    def _listen(self, fixture: str, bms: Any) -> None:
        """Subscribe (read-only) to the BMS driver's signal updates for the live-values line."""
        if bms is None or fixture in self._listening or not hasattr(bms, "add_listener"):
            return
        self._listening.add(fixture)
        values = self._live.setdefault(fixture, {})

        def on_signal(name: str, value: float) -> None:
            if name not in LIVE_SIGNALS:
                return
            values[name] = value
            sink = self._live_sinks.get(fixture)
            now = time.monotonic()
            if sink is not None and now - self._live_sent.get(fixture, 0.0) >= LIVE_PERIOD_S:
                self._live_sent[fixture] = now
                sink(dict(values))

        bms.add_listener(on_signal)

    async def history(self, limit: int = 200) -> list[dict[str, Any]]:
        assert self.session is not None and self.session.store is not None
        return self.session.store.runs(limit=limit)

    async def record(self, run_id: str) -> dict[str, Any]:
        """The full record of one run from the result store."""
        assert self.session is not None and self.session.store is not None
        return self.session.store.record(run_id)

    def store_path(self) -> Path:
        """The station's result store (the session's journal)."""
        return Path(self.db) if self.db else self.config.resolve_path(self.config.config.results.db)

    def reports_dir(self) -> Path:
        """Where the UI writes HTML reports: ``reports/`` beside the result store."""
        return self.store_path().parent / "reports"

    def delivery(self) -> dict[str, dict[str, Any]]:
        """What the line targets (database, MES, MQTT broker) still wait for, per target
        (``LineServices.delivery_state``); {} without line integration. Safe from the UI thread:
        a locked copy, no I/O."""
        session = self.session
        line = session.line if session is not None else None
        return line.delivery_state() if line is not None else {}

    # -- runs --------------------------------------------------------------------------------
    async def run(self, req: RunRequest, prep: Prepared, *, on_event: Callable[[Event], None],
                  ask: Callable[[PromptRequested, Callable[[str], None]], None],
                  withdraw: Callable[[], None],
                  on_live: Callable[[dict[str, float]], None] | None = None) -> tuple[str, str, dict]:
        """Run one pack on ``prep.fixture``; callbacks run on this thread and must only post."""
        assert self.session is not None
        fixture = prep.fixture
        loop = asyncio.get_running_loop()

        async def prompt_handler(request: PromptRequested) -> str:
            answer: asyncio.Future[str] = loop.create_future()

            def give(text: str) -> None:
                loop.call_soon_threadsafe(lambda: answer.done() or answer.set_result(text))

            self._waiting += 1
            self._update_hold()
            try:
                ask(request, give)
                return await answer
            finally:
                self._waiting -= 1
                self._update_hold()
                if not answer.done() or answer.cancelled():  # an abort cancelled the wait: take the dialog down
                    withdraw()

        if on_live is not None:
            self._live_sinks[fixture] = on_live
        self._running += 1
        self._update_hold()
        try:
            return await self.session.run(req, prep, subscribers=[on_event], prompt_handler=prompt_handler,
                                          on_sequencer=lambda seq: self._sequencers.__setitem__(fixture, seq),
                                          signals=False)
        finally:
            self._sequencers.pop(fixture, None)
            self._live_sinks.pop(fixture, None)
            self._running -= 1
            self._update_hold()

    def abort_all(self, reason: str, *, source: str = "operator") -> None:
        """Ask every running fixture to stop and go safe (thread-safe; the stop signals' target)."""
        if self.loop is None or self.loop.is_closed():
            return
        for seq in list(self._sequencers.values()):
            self.loop.call_soon_threadsafe(functools.partial(seq.abort, reason, source=source))

    def note_all(self, message: str, level: str = "warning") -> None:
        """A line in the record of every running fixture (thread-safe)."""
        if self.loop is None or self.loop.is_closed():
            return
        for seq in list(self._sequencers.values()):
            self.loop.call_soon_threadsafe(seq.log, message, level)

    def abort(self, fixture: str, reason: str = "operator abort") -> bool:
        """Ask the fixture's run to stop and go safe; False if nothing runs there."""
        seq = self._sequencers.get(fixture)
        if seq is None or self.loop is None:
            return False
        self.loop.call_soon_threadsafe(functools.partial(seq.abort, reason, source="operator"))
        return True
