"""One action step: its attempts (retries), the action under its timeout, lock and interlock
watch, and the judgement of what it measured against the step's limits."""

from __future__ import annotations

import asyncio
from collections import ChainMap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from drivers.errors import InstrumentError
from station.actions.registry import ActionSpec
from station.engine.context import ActionContext, RunServices
from station.engine.deadlines import StepDeadlines
from station.engine.errors import RunAborted, StepTimeout
from station.engine.monitors import Watchers, stop
from station.events import MeasurementTaken, StepFinished, StepStarted
from station.plan import values as v
from station.plan.tree import ActionNode, title

Measured = dict[str, Any]


@dataclass
class Tally:
    """What the run's steps came to so far: the verdict and the record's reason are read from it."""

    outcomes: dict[str, int] = field(default_factory=dict)  # outcome -> steps that ended so
    results: dict[str, Measured] = field(default_factory=dict)  # step id -> measured and outcome, for ${id.name}
    failed_at: str | None = None  # the first failed step's path
    errored_at: tuple[str, str] | None = None  # the first step in error: (path, error)
    lost: set[str] = field(default_factory=set)  # roles whose link a step lost: re-opened before the next run
    abort_reason: RunAborted | None = None  # what stopped the run (a monitor, an interlock, the operator)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


class StepRunner:
    """Runs the action steps of one run on ``run``'s instruments, counting into ``tally``."""

    def __init__(self, run: RunServices, tally: Tally, watchers: Watchers, *,
                 locks: Mapping[str, asyncio.Lock]) -> None:
        self.run = run
        self.tally = tally
        self.watchers = watchers
        self.locks = locks
        self.emit = run.emitter.emit
        self.deadlines = StepDeadlines()  # every running step's timeout, on one timer

    async def step(self, node: ActionNode, names: ChainMap[str, Any], path: str, phase: str) -> None:
        """Every attempt of the step (its ``retry``), each recorded; the last one counts."""
        step = node.step
        retry = step.retry
        attempts = 1 + (retry.count if retry else 0)
        step_id = step.id or ""
        loop = asyncio.get_running_loop()
        tally = self.tally
        for attempt in range(1, attempts + 1):
            self.emit(StepStarted, path=path, step_id=step_id, name=title(node, names),
                      action=node.spec.name, phase=phase, attempt=attempt)
            start = loop.time()
            try:
                outcome, error, measured = await self._attempt(node, names, path)
            except (RunAborted, asyncio.CancelledError):
                reason = tally.abort_reason
                self.emit(StepFinished, path=path, step_id=step_id, outcome="aborted", duration_s=0.0,
                          error=reason.reason if reason else "cancelled")
                tally.count("aborted")
                raise
            duration = loop.time() - start
            self.emit(StepFinished, path=path, step_id=step_id, outcome=outcome,
                      duration_s=round(duration, 6), attempt=attempt, error=error)
            if step_id:
                tally.results[step_id] = {**measured, "outcome": outcome}
            if retry and outcome in retry.on and attempt < attempts:
                delay = v.seconds(retry.delay, names) if retry.delay is not None else 0.0
                await asyncio.sleep(delay)
                continue
            tally.count(outcome)
            if outcome == "failed" and tally.failed_at is None:
                tally.failed_at = path
            if outcome == "error" and tally.errored_at is None:
                tally.errored_at = (path, error or "")
            return

    async def _attempt(self, node: ActionNode, names: ChainMap[str, Any], path: str) -> tuple[str, str | None, Measured]:
        """(outcome, error, measured) of one attempt; an abort or a cancellation goes through."""
        spec, step = node.spec, node.step
        try:
            args = v.action_args(spec, node.args, names)
            timeout = v.seconds(step.timeout, names) if step.timeout is not None else spec.timeout
            requires = [*step.requires, "hv_interlock"] if spec.hv else step.requires
            if requires:
                await self.watchers.check_interlocks(requires, path)
            ctx = ActionContext(self.run, path, names)
            lock = self.locks.get(spec.role) if spec.role else None
            values = await self._call(spec, ctx, args, timeout, lock, requires, path)
        except RunAborted:
            raise  # recorded by step(); the run goes to the safe state
        except StepTimeout as err:
            return "error", f"timeout: {err}", {}
        except InstrumentError as err:
            if err.connection_lost:
                self.tally.lost.add(self._role_of(err.instrument, spec))
            return "error", f"{type(err).__name__}: {err}", {}
        except Exception as err:  # an action bug is an ERROR of this step, never a crash
            # StepError, ValueProblem and anything else: the step's record names the type
            return "error", f"{type(err).__name__}: {err}", {}
        return self.judge(node, names, path, values)

    async def _call(self, spec: ActionSpec, ctx: ActionContext, args: dict[str, Any], timeout: float,
                    lock: asyncio.Lock | None, requires: Sequence[str], path: str) -> Any:
        watcher = self.watchers.interlocks(requires, path) if requires else None
        # The action runs in this task (wait_for would spawn one per step: three loop iterations
        # per trivial step) under the run's shared deadline timer (see deadlines.py). Only this
        # step's own deadline is a step timeout; an instrument's TimeoutError (or anything else
        # raised inside the action) reaches the record as it is, with its cause.
        key = self.deadlines.start(timeout)
        try:
            if lock is None:
                return await spec.func(ctx, **args)
            async with lock:
                return await spec.func(ctx, **args)
        except asyncio.CancelledError:
            if self.deadlines.finish(key):
                raise StepTimeout(f"step did not finish within {timeout:g} s") from None
            raise
        finally:
            self.deadlines.finish(key)
            if watcher is not None:
                await stop([watcher])

    def _role_of(self, instrument: str, spec: ActionSpec) -> str:
        """The role of the driver an error names (its ``name``: a shared driver carries the role
        it was built for, which may not be this fixture's); the action's role when none does."""
        drivers = self.run.instruments
        if instrument in drivers:
            return instrument
        for role, driver in drivers.items():
            if instrument and instrument in (getattr(driver, "name", None), getattr(driver, "resource", None)):
                return role
        return spec.role or instrument

    def judge(self, node: ActionNode, names: Mapping[str, Any], path: str, values: Any) -> tuple[str, str | None, Measured]:
        """Each measurement against its limit (the step's ``expect``, else the action's default),
        recorded as it is judged: (outcome, error, measured)."""
        if not isinstance(values, dict):
            return "error", f"action {node.spec.name} returned {type(values).__name__}, not measurements", {}
        outcome = "passed"
        measured: Measured = {}
        for name, value in values.items():
            unit = node.spec.measures.get(name, node.spec.measures.get("*", ""))
            value, unit = v.split_quantity(value, unit)
            limit = node.expect.get(name, node.spec.defaults.get(name, node.spec.defaults.get("*")))
            try:
                verdict, limits, text = v.judge(value, unit, limit, names)
            except v.ValueProblem as err:
                return "error", f"limits of '{name}': {err}", measured
            measured[name] = v.as_quantity(value, unit)
            self.emit(MeasurementTaken, path=path, name=name, value=v.jsonable(value), unit=unit,
                      limits=limits, verdict=verdict, text=text)
            if verdict == "fail":
                outcome = "failed"
        missing = [name for name in node.expect if name not in values]
        if missing:
            return "error", f"action {node.spec.name} did not measure {', '.join(missing)}", measured
        return outcome, None, measured
