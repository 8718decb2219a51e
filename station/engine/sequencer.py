"""The sequencer: setup → main → teardown → safe state, judging every measurement.

One ``Sequencer`` runs one plan on one fixture's instruments. Every way out (pass, fail,
error, timeout, monitor trip, interlock, operator abort, Ctrl-C, SIGTERM) ends in
``safe_state()`` on every instrument, each one called even if another raised, and a
``RunFinished`` event carrying the verdict.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import ChainMap
from collections.abc import Awaitable, Callable
from typing import Any

from drivers.errors import InstrumentError
from station import __version__
from station.engine import monitors as mon
from station.engine.context import ActionContext
from station.engine.deadlines import StepDeadlines
from station.engine.errors import PromptUnavailable, RunAborted, StepError, StepTimeout
from station.engine.interlocks import open_inputs
from station.engine.safe import run_safe_state
from station.events import (
    Event,
    InstrumentIdentified,
    InstrumentInfo,
    LogMessage,
    MeasurementTaken,
    PromptAnswered,
    PromptRequested,
    RunFinished,
    RunStarted,
    SeriesRecorded,
    StepFinished,
    StepStarted,
    make as make_event,
)
from station.plan import values as v
from station.plan.tree import ActionNode, BoundPlan, GroupNode, Node, title

Subscriber = Callable[[Event], None]
PromptHandler = Callable[[PromptRequested], Awaitable[str]]

_MICROSECOND = dt.timedelta(microseconds=1)


async def _uncancellable(coro: Awaitable[str], log: Callable[[str, str], None]) -> str:
    """Await ``coro`` in a task of its own that a cancellation of the caller cannot reach: a
    cancel (an outside ``task.cancel()``, a runner shutting down) is noted and waited out."""
    task = asyncio.ensure_future(coro)
    while True:
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                return task.result()
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            log("cancellation requested during teardown or the safe state: noted; they go on", "warning")


class Sequencer:
    def __init__(
        self,
        bound: BoundPlan,
        instruments: dict[str, Any],
        *,
        serial: str,
        operator: str = "",
        station_id: str = "station",
        fixture_id: str = "F1",
        identities: list[InstrumentInfo] | None = None,
        subscribers: list[Subscriber] | None = None,
        critical: list[Subscriber] | None = None,
        prompt_handler: PromptHandler | None = None,
        locks: dict[str, asyncio.Lock] | None = None,
        simulated: bool = False,
        faults: list[str] | None = None,
        interlock_period: float = 0.1,
        run_id: str | None = None,
        stop_on_failure: bool = False,
        mes_transaction_id: str | None = None,
    ) -> None:
        self.bound = bound
        self.instruments = instruments
        self.serial = serial
        self.operator = operator
        self.station_id = station_id
        self.fixture_id = fixture_id
        self.identities = identities if identities is not None else []
        self.subscribers = list(subscribers or [])
        self.critical = list(critical or [])
        self.prompt_handler = prompt_handler
        self.locks = locks or {}
        self.simulated = simulated
        self.faults = faults or []
        self.interlock_period = interlock_period
        self.stop_on_failure = stop_on_failure or bound.plan.on_failure == "stop"
        self.mes_transaction_id = mes_transaction_id
        self.run_id = run_id or uuid.uuid4().hex[:16]
        self.results: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[str, int] = {}
        self.abort_reason: RunAborted | None = None
        self.verdict: str | None = None
        self.failed_at: str | None = None
        self.errored_at: tuple[str, str] | None = None
        self._main_task: asyncio.Task | None = None
        self.watched_interlocks: dict[str, frozenset[str]] = {}  # step path -> fixture inputs its watcher polls
        self.preflight_error: str | None = None  # an instrument failed to open: record it, go safe
        self._ending = False  # True once teardown and the safe state have begun
        self._t0 = 0.0
        self._clock = None  # the running loop's time(), set by run() (events before it read the loop)
        self._utc0 = dt.datetime.now(dt.UTC)
        self.deadlines = StepDeadlines()  # every running step's timeout, on one timer
        self._stamp_window = (0.0, 0.0, "")  # (t from, t until, utc text) of the last stamp's millisecond

    # -- events ----------------------------------------------------------------------------
    def stamp(self) -> tuple[str, float]:
        t = (self._clock or asyncio.get_running_loop().time)() - self._t0
        # The text only changes once per millisecond, and a step emits three events well within
        # one: it is reused while t stays inside that millisecond (1 µs clear of its edges, so
        # timedelta's rounding to µs cannot cross one). Datetime arithmetic + isoformat on every
        # event was 20,500 instructions a stamp, now 2,400 (callgrind); bench_engine 68 -> 56 µs/step.
        lo, hi, utc = self._stamp_window
        if lo <= t < hi:
            return utc, t
        offset = dt.timedelta(seconds=t)
        when = self._utc0 + offset
        utc = when.isoformat(timespec="milliseconds")
        ms_start = offset // _MICROSECOND - when.microsecond % 1000  # µs after utc0 where this ms starts
        self._stamp_window = ((ms_start + 1) / 1e6, (ms_start + 999) / 1e6, utc)
        return utc, t

    def emit(self, cls: type[Event], **fields: Any) -> None:
        utc, t = self.stamp()
        event = make_event(cls, self.run_id, utc, round(t, 6), fields)  # cls(...) without its slow frozen init
        for sub in self.critical:
            sub(event)  # the journal: if we cannot record, the run must not go on
        if not self.subscribers:  # the usual case in a headless run: no copy of an empty list
            return
        for sub in list(self.subscribers):
            try:
                sub(event)
            except Exception as err:  # a broken viewer must not break the run: detach it, say so
                self.subscribers.remove(sub)
                self.log(f"subscriber {getattr(sub, '__name__', sub)!r} failed and was detached: {type(err).__name__}: {err}", "error")

    def log(self, message: str, level: str = "info") -> None:
        self.emit(LogMessage, level=level, message=message)

    def record_series(self, path: str, name: str, columns: list[str], rows: list[list[float]]) -> None:
        self.emit(SeriesRecorded, path=path, name=name, columns=list(columns), rows=[list(r) for r in rows])

    # -- abort -----------------------------------------------------------------------------
    def abort(self, reason: str, *, source: str = "operator") -> None:
        """Stop the run now and go to the safe state. Safe to call from any callback in the loop.

        Once main is over (teardown or the safe state running) nothing is cut short: the
        request is only noted in the record.
        """
        if self._ending:
            self.log(f"{source}: {reason}: noted; teardown and the safe state go on", "warning")
            return
        if self.abort_reason is None:
            self.abort_reason = RunAborted(reason, source=source)
        if self._main_task is not None and not self._main_task.done():
            self._main_task.cancel()

    async def prompt(self, path: str, kind: str, message: str, pattern: str | None, default: str | None) -> str:
        self.emit(PromptRequested, path=path, style=kind, message=message, pattern=pattern)
        if self.prompt_handler is not None:
            answer = await self.prompt_handler(PromptRequested(self.run_id, *self.stamp(), path, kind, message, pattern))
        elif default is not None:
            answer = default
        else:
            raise PromptUnavailable(f"prompt '{message}' needs an operator (no default given)")
        self.emit(PromptAnswered, path=path, answer=str(answer))
        return str(answer)

    # -- the run ---------------------------------------------------------------------------
    def names(self) -> ChainMap:
        base = {"variant": self.bound.variant, "serial": self.serial, "fixture": self.fixture_id,
                "station": self.station_id}
        return ChainMap({}, self.results, self.bound.parameters, base)

    async def run(self) -> str:
        """Run the plan; return the verdict. Never raises for plan/instrument trouble."""
        self._clock = asyncio.get_running_loop().time
        self._t0 = self._clock()
        plan = self.bound.plan
        self.emit(
            RunStarted, serial=self.serial, plan_id=plan.id, plan_version=plan.version,
            plan_title=plan.title, plan_path=self.bound.path, plan_sha256=self.bound.sha256,
            variant=self.bound.variant, parameters=v.jsonable(self.bound.parameters),
            station_id=self.station_id, fixture_id=self.fixture_id, operator=self.operator,
            software_version=__version__, simulated=self.simulated, faults=list(self.faults),
            planned_steps=self.bound.leaf_count(), mes_transaction_id=self.mes_transaction_id,
            plan_libraries=dict(self.bound.libraries), plan_release_sha256=self.bound.release_sha256,
            **getattr(self, "provenance", {}),  # mode, config and release signature (runner.Session.run)
        )
        for info in self.identities:
            self.emit(InstrumentIdentified, info=info)
        reason: str | None = None
        self._main_task = asyncio.current_task()
        if self.preflight_error:
            self.outcomes["error"] = 1
            reason = f"instrument setup: {self.preflight_error}"
            self.log(reason, "error")
        try:
            if self.abort_reason is not None:  # asked to stop before it began (a signal, the UI)
                raise self.abort_reason
            if not self.preflight_error:
                await self._phase(self.bound.setup, "setup")
            if not self._stop_main():
                await self._phase(self.bound.main, "main")
        except asyncio.CancelledError:
            if self.abort_reason is None:
                self.abort_reason = RunAborted("run cancelled", source="signal")
            # consume our own cancellation so teardown and the safe state can still await
            task = asyncio.current_task()
            while task is not None and task.cancelling():
                task.uncancel()
        except RunAborted as err:
            self.abort_reason = self.abort_reason or err
        except Exception as err:  # an engine bug must still end in the safe state, recorded
            self.outcomes["error"] = self.outcomes.get("error", 0) + 1
            reason = f"internal error: {type(err).__name__}: {err}"
        finally:
            self._main_task = None
        if self.abort_reason is not None:
            reason = f"{self.abort_reason.source}: {self.abort_reason.reason}"
        self._ending = True  # from here on an abort is only noted (see abort())
        return await _uncancellable(self._finish(reason), self.log)

    async def _finish(self, reason: str | None) -> str:
        """Teardown, the safe state, the verdict and ``RunFinished``: never cancelled."""
        if not self.preflight_error:
            await self._teardown()
        safe = await run_safe_state(self)
        self.deadlines.close()
        verdict = self._verdict()
        if reason is None and verdict == "FAIL":
            reason = f"failed at {self.failed_at}"
        if reason is None and verdict == "ERROR" and self.errored_at:
            reason = f"error at {self.errored_at[0]}: {self.errored_at[1]}"
        if not safe.confirmed:  # said after what ended the run, never instead of it
            problem = f"safe state not confirmed: {safe.describe()}"
            if verdict in ("PASS", "FAIL"):
                verdict = "ERROR"
            reason = f"{reason}; {problem}" if reason else problem
        self.verdict = verdict
        self.emit(RunFinished, verdict=verdict, reason=reason, duration_s=round(self.stamp()[1], 6))
        return verdict

    def _stop_main(self) -> bool:
        return self.outcomes.get("error", 0) > 0 or (self.stop_on_failure and self.outcomes.get("failed", 0) > 0)

    def _verdict(self) -> str:
        if self.abort_reason is not None:
            return "ABORTED"
        if self.outcomes.get("error"):
            return "ERROR"
        if self.outcomes.get("failed"):
            return "FAIL"
        return "PASS"

    async def _teardown(self) -> None:
        """Teardown steps always run; an abort during teardown does not skip the rest."""
        self._main_task = asyncio.current_task()
        try:
            for node in self.bound.teardown:
                try:
                    await self._node(node, self.names(), "teardown", "teardown")
                except RunAborted as err:
                    self.log(f"during teardown: {err.reason}", "warning")
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    while task is not None and task.cancelling():
                        task.uncancel()
                    self.log("teardown step interrupted; continuing with the next", "warning")
        finally:
            self._main_task = None

    async def _phase(self, nodes: list[Node], phase: str) -> None:
        names = self.names()
        for node in nodes:
            await self._node(node, names, phase, phase)
            if phase == "main" and self._stop_main():
                break
            if phase == "main" and self.stop_on_failure and self.outcomes.get("failed"):
                break
            if phase == "setup" and (self.outcomes.get("failed") or self.outcomes.get("error")):
                break

    # -- nodes -----------------------------------------------------------------------------
    async def _node(self, node: Node, names: ChainMap, prefix: str, phase: str) -> None:
        path = f"{prefix}/{node.label}"
        if node.step.when is not None:
            try:
                go = v.truthy(v.evaluate_condition(node.step.when, names))
            except v.ValueProblem as err:
                self._skip_or_error(node, path, phase, f"when: {err}", names)
                return
            if not go:
                self._skip_or_error(node, path, phase, None, names)
                return
        if isinstance(node, ActionNode):
            await self._action(node, names, path, phase)
        else:
            await self._group(node, names, path, phase)

    def _skip_or_error(self, node: Node, path: str, phase: str, error: str | None, names: ChainMap | None = None) -> None:
        outcome = "error" if error else "skipped"
        self.emit(StepStarted, path=path, step_id=node.id or "", name=title(node, names),
                  action=getattr(getattr(node, "spec", None), "name", "group"), phase=phase)
        self.emit(StepFinished, path=path, step_id=node.id or "", outcome=outcome, duration_s=0.0, error=error)
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    async def _group(self, node: GroupNode, names: ChainMap, path: str, phase: str) -> None:
        scope = names
        if node.include_defaults is not None:
            try:
                scope = v.include_scope(node.include_defaults, node.include_args or {}, names)
            except v.ValueProblem as err:
                self._skip_or_error(node, path, phase, f"include arguments: {err}")
                return
        if node.for_each is None:
            await self._group_body(node, scope, path, phase)
            return
        var, raw = node.for_each
        try:
            items = v.evaluate(raw, scope)
        except v.ValueProblem as err:
            self._skip_or_error(node, path, phase, f"for_each: {err}")
            return
        if not isinstance(items, (list, tuple)):
            self._skip_or_error(node, path, phase, f"for_each: {var} needs a list, got {v.render(items)}")
            return
        for item in items:
            await self._group_body(node, scope.new_child({var: item}), f"{path}[{v.render(item)}]", phase)
            if self._stop_main() and phase != "teardown":
                break

    async def _group_body(self, node: GroupNode, names: ChainMap, path: str, phase: str) -> None:
        watchers = mon.start(self, node, names, path)
        try:
            if node.parallel:
                await self._parallel(node.children, names, path, phase)
            else:
                for child in node.children:
                    await self._node(child, names, path, phase)
                    if self._stop_main() and phase != "teardown":
                        break
        finally:
            await mon.stop(watchers)
            for child in node.finally_:
                try:
                    await self._node(child, names, path, phase)
                except RunAborted as err:
                    self.log(f"during finally of {path}: {err.reason}", "warning")

    async def _parallel(self, nodes: list[Node], names: ChainMap, path: str, phase: str) -> None:
        tasks = [asyncio.create_task(self._node(n, names.new_child(), path, phase)) for n in nodes]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- actions ---------------------------------------------------------------------------
    async def _action(self, node: ActionNode, names: ChainMap, path: str, phase: str) -> None:
        step = node.step
        retry = step.retry
        attempts = 1 + (retry.count if retry else 0)
        step_id = step.id or ""
        loop = asyncio.get_running_loop()
        for attempt in range(1, attempts + 1):
            self.emit(StepStarted, path=path, step_id=step_id, name=title(node, names),
                      action=node.spec.name, phase=phase, attempt=attempt)
            start = loop.time()
            outcome, error, measured = await self._attempt(node, names, path)
            duration = loop.time() - start
            self.emit(StepFinished, path=path, step_id=step_id, outcome=outcome,
                      duration_s=round(duration, 6), attempt=attempt, error=error)
            if step_id:
                self.results[step_id] = {**measured, "outcome": outcome}
            if retry and outcome in retry.on and attempt < attempts:
                delay = v.seconds(retry.delay, names) if retry.delay is not None else 0.0
                await asyncio.sleep(delay)
                continue
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
            if outcome == "failed" and self.failed_at is None:
                self.failed_at = path
            if outcome == "error" and self.errored_at is None:
                self.errored_at = (path, error or "")
            return

    async def _attempt(self, node: ActionNode, names: ChainMap, path: str) -> tuple[str, str | None, dict]:
        spec, step = node.spec, node.step
        try:
            args = v.action_args(spec, node.args, names)
            timeout = v.seconds(step.timeout, names) if step.timeout is not None else spec.timeout
            requires = [*step.requires, "hv_interlock"] if spec.hv else step.requires
            if requires:
                await self._check_interlocks(requires, path)
            ctx = ActionContext(self, path, names)
            lock = self.locks.get(spec.role) if spec.role else None
            values = await self._call(spec, ctx, args, timeout, lock, requires, path)
        except (RunAborted, asyncio.CancelledError):
            self.emit(StepFinished, path=path, step_id=step.id or "", outcome="aborted", duration_s=0.0,
                      error=self.abort_reason.reason if self.abort_reason else "cancelled")
            self.outcomes["aborted"] = self.outcomes.get("aborted", 0) + 1
            raise
        except StepTimeout as err:
            return "error", f"timeout: {err}", {}
        except InstrumentError as err:
            return "error", f"{type(err).__name__}: {err}", {}
        except (StepError, v.ValueProblem) as err:
            return "error", f"{type(err).__name__}: {err}", {}
        except Exception as err:  # an action bug is an ERROR of this step, never a crash
            return "error", f"{type(err).__name__}: {err}", {}
        return self._judge(node, names, path, values)

    async def _call(self, spec, ctx, args, timeout, lock, requires, path) -> dict:
        watcher = mon.watch_interlocks(self, requires, path) if requires else None
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
                await mon.stop([watcher])

    async def _check_interlocks(self, requires: list[str], path: str) -> None:
        fixture = self.instruments.get("fixture")
        if fixture is None:
            return
        inputs = await fixture.read_inputs()
        missing = open_inputs(requires, inputs)
        if missing:
            raise RunAborted(f"interlock open before {path}: {', '.join(missing)}", source="interlock")

    def _judge(self, node: ActionNode, names: ChainMap, path: str, values: dict) -> tuple[str, str | None, dict]:
        if not isinstance(values, dict):
            return "error", f"action {node.spec.name} returned {type(values).__name__}, not measurements", {}
        outcome = "passed"
        measured: dict[str, Any] = {}
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
