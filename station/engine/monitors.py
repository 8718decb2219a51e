"""Monitors: live limits on signals while a group runs, and interlock watching during HV steps.

A trip (value out of limits, a stale signal — losing a watchdog during HV is a safety abort —
or an interlock opening) aborts the run to the safe state.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from drivers.errors import InstrumentError
from station.events import MonitorTripped
from station.plan import values as v

if TYPE_CHECKING:  # pragma: no cover
    from station.engine.sequencer import Sequencer
    from station.plan.tree import GroupNode

DEFAULT_PERIOD = 0.1  # s


def start(seq: "Sequencer", node: "GroupNode", names: Mapping[str, Any], path: str) -> list[asyncio.Task]:
    tasks = []
    if node.monitors:
        # one task checks all of a group's monitors: one wake-up per period, not one per signal
        tasks.append(asyncio.create_task(_watch_signals(seq, node.monitors, names, path)))
    if node.step.requires:
        tasks.append(watch_interlocks(seq, list(node.step.requires), path))
    return tasks


async def stop(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


def _trip(seq: "Sequencer", path: str, signal: str, value: float, limit: str, source: str) -> None:
    seq.emit(MonitorTripped, path=path, signal=signal, value=value, limit=limit)
    seq.abort(f"{signal} = {v.render(value)} violates {limit}", source=source)


async def _watch_signals(seq: "Sequencer", monitors: list, names: Mapping[str, Any], path: str) -> None:
    checks = []
    for mon in monitors:
        role, _, signal = mon.signal.partition(".")
        instrument = seq.instruments.get(role)
        if instrument is None or not hasattr(instrument, "signal"):
            _trip(seq, path, mon.signal, float("nan"), "signal unavailable", "monitor")
            return
        low = v.si_value(v.evaluate(mon.min, names)) if mon.min is not None else None
        high = v.si_value(v.evaluate(mon.max, names)) if mon.max is not None else None
        checks.append((mon, instrument, signal, low, high))
    period = min((v.seconds(m.period, names) for m in monitors if m.period is not None), default=DEFAULT_PERIOD)
    while True:
        for mon, instrument, signal, low, high in checks:
            try:
                value = float(instrument.signal(signal))
            except InstrumentError as err:
                _trip(seq, path, mon.signal, float("nan"), f"signal lost ({err})", "monitor")
                return
            if low is not None and value < low:
                _trip(seq, path, mon.signal, value, f"min {v.render(mon.min)}", "monitor")
                return
            if high is not None and value > high:
                _trip(seq, path, mon.signal, value, f"max {v.render(mon.max)}", "monitor")
                return
        await asyncio.sleep(period)


def watch_interlocks(seq: "Sequencer", requires: list[str], path: str) -> asyncio.Task:
    return asyncio.create_task(_watch_interlocks(seq, requires, path))


async def _watch_interlocks(seq: "Sequencer", requires: list[str], path: str) -> None:
    from station.engine.sequencer import REQUIRE_INPUTS

    fixture = seq.instruments.get("fixture")
    if fixture is None:
        return
    wanted = sorted({name for req in requires for name in REQUIRE_INPUTS.get(req, ())})
    # Nested HV groups and steps share one poll: the outermost watcher covers the inner ones.
    covered = set(wanted) <= seq.watched_interlocks
    if covered:
        return
    before = set(seq.watched_interlocks)
    seq.watched_interlocks |= set(wanted)
    try:
        await _poll_interlocks(seq, fixture, wanted, path)
    finally:
        seq.watched_interlocks = before


async def _poll_interlocks(seq: "Sequencer", fixture, wanted: list[str], path: str) -> None:
    while True:
        await asyncio.sleep(seq.interlock_period)
        try:
            inputs = await fixture.read_inputs()
        except InstrumentError as err:
            _trip(seq, path, "fixture", float("nan"), f"fixture unreachable ({err})", "interlock")
            return
        lost = [name for name in wanted if not inputs.get(name, False)]
        if lost:
            _trip(seq, path, "fixture." + ",".join(lost), 0.0, "interlock closed", "interlock")
            return
