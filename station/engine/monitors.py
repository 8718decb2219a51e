"""Monitors: live limits on signals while a group runs, and interlock watching during HV steps.

A trip (value out of limits, a stale signal — losing a watchdog during HV is a safety abort —
or an interlock opening) aborts the run to the safe state.

Watchers are timer callbacks on the loop clock, not tasks: a check runs on the grid
t0 + k x period (``loop.call_at``) and an interlock poll's reply is judged in the callback that
receives it. With a task, ``asyncio.sleep`` cost a wake-up iteration per check and the poll's
reply another; the reference run polls the fixture 31k times and checks monitors 15k times.
``stop`` cancels a watcher synchronously: its timer, its read in flight, its claim on the
interlocks it covers.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from drivers import roles
from drivers.errors import InstrumentError
from station.engine.emitter import Emit
from station.engine.errors import RunAborted
from station.engine.interlocks import inputs_for, open_inputs
from station.events import MonitorTripped
from station.plan import signal_units, values as v
from station.plan.model import Monitor
from station.plan.tree import GroupNode

DEFAULT_PERIOD = 0.1  # s


class Abort(Protocol):
    """Stop the run now and go to the safe state (``Sequencer.abort``)."""

    def __call__(self, reason: str, *, source: str = ...) -> None: ...


class Watcher(Protocol):
    def cancel(self) -> None: ...


class Watchers:
    """Starts one run's watchers on ``instruments`` (role -> open driver): a trip is recorded
    with ``emit`` and ends the run through ``abort``. ``claims``: step path -> the fixture inputs
    its interlock watcher polls (an enclosing watcher covers the steps inside it)."""

    def __init__(self, instruments: Mapping[str, Any], *, emit: Emit, abort: Abort,
                 interlock_period: float) -> None:
        self.instruments = instruments
        self.emit = emit
        self.abort = abort
        self.interlock_period = interlock_period  # s between polls of the fixture's inputs
        self.interlock_role = roles.on_duty(roles.INTERLOCKS)
        self.claims: dict[str, frozenset[str]] = {}

    def start(self, node: GroupNode, names: Mapping[str, Any], path: str) -> list[Watcher]:
        """Start a group's watchers; hand the list to ``stop`` when the group ends."""
        watchers: list[Watcher] = []
        if node.monitors:
            # one watcher checks all of a group's monitors: one wake-up per period, not one per signal
            watchers.append(_SignalWatch(self, node.monitors, names, path))
        if node.step.requires:
            watcher = self.interlocks(list(node.step.requires), path)
            if watcher is not None:
                watchers.append(watcher)
        return watchers

    def interlocks(self, requires: Sequence[str], path: str) -> _InterlockWatch | None:
        """Poll the fixture's inputs that ``requires`` needs every ``interlock_period`` s until
        ``stop``; None when there is no fixture or an enclosing watcher already polls them."""
        fixture = self.instruments.get(self.interlock_role)
        if fixture is None:
            return None
        wanted = inputs_for(requires)
        # Nested HV groups and steps share one poll: an enclosing watcher (a path prefix: it outlives
        # the step) covers the inner ones. A sibling never does: in a parallel group the first HV
        # step to finish would stop the poll while the others still run.
        if any(path.startswith(outer + "/") and set(wanted) <= inputs for outer, inputs in self.claims.items()):
            return None
        return _InterlockWatch(self, fixture, wanted, path)

    async def check_interlocks(self, requires: Sequence[str], path: str) -> None:
        """Before a step: raise ``RunAborted`` when the fixture shows an input ``requires`` needs open."""
        fixture = self.instruments.get(self.interlock_role)
        if fixture is None:
            return
        inputs = await fixture.read_inputs()
        missing = open_inputs(requires, inputs)
        if missing:
            raise RunAborted(f"interlock open before {path}: {', '.join(missing)}", source="interlock")

    def trip(self, path: str, signal: str, value: float, limit: str, source: str) -> None:
        self.emit(MonitorTripped, path=path, signal=signal, value=value, limit=limit)
        self.abort(f"{signal} = {v.render(value)} violates {limit}", source=source)


async def stop(watchers: Sequence[Watcher]) -> None:
    """Cancel ``watchers`` (from ``Watchers.start`` / ``Watchers.interlocks``); nothing of them runs after."""
    for watcher in watchers:
        watcher.cancel()


class _Grid:
    """Ticks every ``period`` s on the grid t0 + k x period of the loop clock, from ``loop.call_at``.

    A tick that comes late (a busy loop, a slow reply) is followed by the next grid point still
    ahead, never by a burst of catch-up ticks.
    """

    def __init__(self, period: float, tick: Callable[[], None]) -> None:
        self.loop = asyncio.get_running_loop()
        self.period = period  # s
        self.tick = tick
        self.t0 = self.loop.time()  # s, loop clock
        self.k = 0
        self.handle: asyncio.TimerHandle | asyncio.Handle | None = None

    def next(self) -> None:
        """Schedule the tick at the grid point after the last one, or the first one ahead if that passed."""
        self.k += 1
        when = self.t0 + self.k * self.period
        now = self.loop.time()
        if when < now:  # a whole period late or more: skip the points missed
            self.k = math.ceil((now - self.t0) / self.period)
            when = self.t0 + self.k * self.period
        self.handle = self.loop.call_at(when, self.tick)

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None


class _SignalWatch:
    """Checks a group's monitors: first in the loop's next iteration, then every period."""

    def __init__(self, run: Watchers, monitors: list[Monitor], names: Mapping[str, Any], path: str) -> None:
        self.run, self.monitors, self.names, self.path = run, monitors, names, path
        self.checks: list[tuple[Monitor, Callable[[str], float], str, float | None, float | None, float]] = []
        self.grid = _Grid(DEFAULT_PERIOD, self._check)
        self.grid.handle = self.grid.loop.call_soon(self._first)

    def cancel(self) -> None:
        self.grid.cancel()

    def _first(self) -> None:
        self.grid.handle = None
        run, names, monitors = self.run, self.names, self.monitors
        self.grid.period = min((v.seconds(m.period, names) for m in monitors if m.period is not None),
                               default=DEFAULT_PERIOD)
        for mon in self.monitors:
            role, _, signal = mon.signal.partition(".")
            instrument = run.instruments.get(role)
            if instrument is None or not hasattr(instrument, "signal"):
                run.trip(self.path, mon.signal, float("nan"), "signal unavailable", "monitor")
                return
            low = v.si_value(v.evaluate(mon.min, names)) if mon.min is not None else None
            high = v.si_value(v.evaluate(mon.max, names)) if mon.max is not None else None
            self.checks.append((mon, instrument.signal, signal, low, high, signal_units.si_factor(mon.signal)))
        self.grid.t0 = self.grid.loop.time()
        self._check()

    def _check(self) -> None:
        self.grid.handle = None
        for mon, read, signal, low, high, factor in self.checks:
            try:
                value = float(read(signal)) * factor  # SOC 50.0 (%) -> 0.5, as '95 %' evaluates
            except InstrumentError as err:
                self.run.trip(self.path, mon.signal, float("nan"), f"signal lost ({err})", "monitor")
                return
            if low is not None and value < low:
                self.run.trip(self.path, mon.signal, value, f"min {v.render(mon.min)}", "monitor")
                return
            if high is not None and value > high:
                self.run.trip(self.path, mon.signal, value, f"max {v.render(mon.max)}", "monitor")
                return
        self.grid.next()


class _InterlockWatch:
    """One poll of the fixture's inputs per period, the next one scheduled once the reply is in."""

    def __init__(self, run: Watchers, fixture: Any, wanted: list[str], path: str) -> None:
        self.run, self.wanted, self.path = run, wanted, path
        make = getattr(fixture, "input_poll", None)
        self.poll: _Poll = (make() if make is not None else None) or _TaskPoll(fixture)
        self.claim: frozenset[str] | None = frozenset(wanted)
        run.claims[path] = self.claim
        self.grid = _Grid(run.interlock_period, self._tick)
        self.grid.next()

    def cancel(self) -> None:
        """Stop polling (idempotent): the timer, the read in flight, the claim on the inputs."""
        self.grid.cancel()
        self.poll.cancel()
        if self.claim is not None:
            if self.run.claims.get(self.path) is self.claim:  # not a newer watcher's
                del self.run.claims[self.path]
            self.claim = None

    def _tick(self) -> None:
        self.grid.handle = None
        try:
            self.poll.start(self._judge)
        except InstrumentError as err:
            self._judge(None, err)

    def _judge(self, inputs: dict[str, bool] | None, err: InstrumentError | None) -> None:
        if err is not None:
            try:
                self.run.trip(self.path, self.run.interlock_role, float("nan"), f"fixture unreachable ({err})", "interlock")
            finally:
                self.cancel()
            return
        assert inputs is not None  # a poll gives inputs or an error
        lost = [name for name in self.wanted if not inputs.get(name, False)]
        if lost:
            try:
                self.run.trip(self.path, f"{self.run.interlock_role}." + ",".join(lost), 0.0, "interlock closed", "interlock")
            finally:
                self.cancel()
            return
        self.grid.next()


InputsDone = Callable[[dict[str, bool] | None, InstrumentError | None], None]


class _Poll(Protocol):
    """A read of the fixture's inputs in flight: ``start(done)`` reads once and calls ``done``
    with (inputs, None) or (None, error); ``cancel`` drops the read and never calls ``done``."""

    def start(self, done: InputsDone) -> None: ...
    def cancel(self) -> None: ...


class _TaskPoll:
    """``InputPoll``'s interface (drivers/fixture/modbus_fixture.py) over any fixture's
    ``read_inputs`` coroutine, one task per read: fixtures without ``input_poll``."""

    def __init__(self, fixture: Any) -> None:
        self.fixture = fixture
        self.task: asyncio.Future[dict[str, bool]] | None = None
        self.done: InputsDone | None = None

    def start(self, done: InputsDone) -> None:
        self.done = done
        self.task = asyncio.ensure_future(self.fixture.read_inputs())
        self.task.add_done_callback(self._settle)

    def cancel(self) -> None:
        task, self.task, self.done = self.task, None, None
        if task is not None:
            task.cancel()

    def _settle(self, task: asyncio.Future[dict[str, bool]]) -> None:
        if task is not self.task or task.cancelled():
            return  # cancelled: nobody is waiting for it
        done, self.task, self.done = self.done, None, None
        assert done is not None  # set by start() with the task
        err = task.exception()
        if err is None:
            done(task.result(), None)
        elif isinstance(err, InstrumentError):
            done(None, err)
        else:
            raise err  # a fixture bug: the loop's exception handler reports it; the watch stops
