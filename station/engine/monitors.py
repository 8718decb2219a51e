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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from drivers.errors import InstrumentError
from station.engine.interlocks import inputs_for
from station.events import MonitorTripped
from station.plan import signal_units, values as v

if TYPE_CHECKING:  # pragma: no cover
    from station.engine.sequencer import Sequencer
    from station.plan.tree import GroupNode

DEFAULT_PERIOD = 0.1  # s


def start(seq: Sequencer, node: GroupNode, names: Mapping[str, Any], path: str) -> list:
    """Start a group's watchers; hand the list to ``stop`` when the group ends."""
    watchers: list = []
    if node.monitors:
        # one watcher checks all of a group's monitors: one wake-up per period, not one per signal
        watchers.append(_SignalWatch(seq, node.monitors, names, path))
    if node.step.requires:
        watcher = watch_interlocks(seq, list(node.step.requires), path)
        if watcher is not None:
            watchers.append(watcher)
    return watchers


async def stop(watchers: list) -> None:
    """Cancel ``watchers`` (from ``start`` / ``watch_interlocks``); nothing of them runs after."""
    for watcher in watchers:
        watcher.cancel()


def _trip(seq: Sequencer, path: str, signal: str, value: float, limit: str, source: str) -> None:
    seq.emit(MonitorTripped, path=path, signal=signal, value=value, limit=limit)
    seq.abort(f"{signal} = {v.render(value)} violates {limit}", source=source)


class _Grid:
    """Ticks every ``period`` s on the grid t0 + k x period of the loop clock, from ``loop.call_at``.

    A tick that comes late (a busy loop, a slow reply) is followed by the next grid point still
    ahead, never by a burst of catch-up ticks.
    """

    def __init__(self, period: float, tick) -> None:
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

    def __init__(self, seq: Sequencer, monitors: list, names: Mapping[str, Any], path: str) -> None:
        self.seq, self.monitors, self.names, self.path = seq, monitors, names, path
        self.checks: list[tuple] = []
        self.grid = _Grid(DEFAULT_PERIOD, self._check)
        self.grid.handle = self.grid.loop.call_soon(self._first)

    def cancel(self) -> None:
        self.grid.cancel()

    def _first(self) -> None:
        self.grid.handle = None
        seq, names, monitors = self.seq, self.names, self.monitors
        self.grid.period = min((v.seconds(m.period, names) for m in monitors if m.period is not None),
                               default=DEFAULT_PERIOD)
        for mon in self.monitors:
            role, _, signal = mon.signal.partition(".")
            instrument = seq.instruments.get(role)
            if instrument is None or not hasattr(instrument, "signal"):
                _trip(seq, self.path, mon.signal, float("nan"), "signal unavailable", "monitor")
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
                _trip(self.seq, self.path, mon.signal, float("nan"), f"signal lost ({err})", "monitor")
                return
            if low is not None and value < low:
                _trip(self.seq, self.path, mon.signal, value, f"min {v.render(mon.min)}", "monitor")
                return
            if high is not None and value > high:
                _trip(self.seq, self.path, mon.signal, value, f"max {v.render(mon.max)}", "monitor")
                return
        self.grid.next()


def watch_interlocks(seq: Sequencer, requires: list[str], path: str) -> _InterlockWatch | None:
    """Poll the fixture's inputs that ``requires`` needs every ``seq.interlock_period`` s until
    ``stop``; None when there is no fixture or an enclosing watcher already polls them."""
    fixture = seq.instruments.get("fixture")
    if fixture is None:
        return None
    wanted = inputs_for(requires)
    # Nested HV groups and steps share one poll: an enclosing watcher (a path prefix: it outlives
    # the step) covers the inner ones. A sibling never does: in a parallel group the first HV
    # step to finish would stop the poll while the others still run.
    if any(path.startswith(outer + "/") and set(wanted) <= inputs
           for outer, inputs in seq.watched_interlocks.items()):
        return None
    return _InterlockWatch(seq, fixture, wanted, path)


class _InterlockWatch:
    """One poll of the fixture's inputs per period, the next one scheduled once the reply is in."""

    def __init__(self, seq: Sequencer, fixture, wanted: list[str], path: str) -> None:
        self.seq, self.wanted, self.path = seq, wanted, path
        make = getattr(fixture, "input_poll", None)
        self.poll = (make() if make is not None else None) or _TaskPoll(fixture)
        self.claim: frozenset[str] | None = frozenset(wanted)
        seq.watched_interlocks[path] = self.claim
        self.grid = _Grid(seq.interlock_period, self._tick)
        self.grid.next()

    def cancel(self) -> None:
        """Stop polling (idempotent): the timer, the read in flight, the claim on the inputs."""
        self.grid.cancel()
        self.poll.cancel()
        if self.claim is not None:
            if self.seq.watched_interlocks.get(self.path) is self.claim:  # not a newer watcher's
                del self.seq.watched_interlocks[self.path]
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
                _trip(self.seq, self.path, "fixture", float("nan"), f"fixture unreachable ({err})", "interlock")
            finally:
                self.cancel()
            return
        lost = [name for name in self.wanted if not inputs.get(name, False)]
        if lost:
            try:
                _trip(self.seq, self.path, "fixture." + ",".join(lost), 0.0, "interlock closed", "interlock")
            finally:
                self.cancel()
            return
        self.grid.next()


class _TaskPoll:
    """``InputPoll``'s interface (drivers/fixture/modbus_fixture.py) over any fixture's
    ``read_inputs`` coroutine, one task per read: fixtures without ``input_poll``."""

    def __init__(self, fixture) -> None:
        self.fixture = fixture
        self.task: asyncio.Task | None = None
        self.done = None

    def start(self, done) -> None:
        self.done = done
        self.task = asyncio.ensure_future(self.fixture.read_inputs())
        self.task.add_done_callback(self._settle)

    def cancel(self) -> None:
        task, self.task, self.done = self.task, None, None
        if task is not None:
            task.cancel()

    def _settle(self, task: asyncio.Task) -> None:
        if task is not self.task or task.cancelled():
            return  # cancelled: nobody is waiting for it
        done, self.task, self.done = self.done, None, None
        err = task.exception()
        if err is None:
            done(task.result(), None)
        elif isinstance(err, InstrumentError):
            done(None, err)
        else:
            raise err  # a fixture bug: the loop's exception handler reports it; the watch stops
