"""The sequencer: setup → main → teardown → safe state, judging every measurement.

One ``Sequencer`` runs one plan on one fixture's instruments. Every way out (pass, fail,
error, timeout, monitor trip, interlock, operator abort, Ctrl-C, SIGTERM) ends in
``safe_state()`` on every instrument, each one called even if another raised, and a
``RunFinished`` event carrying the verdict.

It walks the plan's tree (groups, loops, parallel branches, ``finally``); one action step is
``steps.StepRunner``'s, the safe state ``safe.run_safe_state``'s, the monitors and interlock
polls ``monitors.Watchers``', the events ``emitter.Emitter``'s: each is given what it works on.
"""

from __future__ import annotations

import asyncio
from collections import ChainMap
from collections.abc import Awaitable, Callable
from typing import Any

from station import __version__
from station.engine.context import RunServices
from station.engine.emitter import Emitter
from station.engine.errors import PromptUnavailable, RunAborted
from station.engine.monitors import Watchers, stop
from station.engine.parts import Instruments, Opened, Outlets, RunInfo
from station.engine.safe import run_safe_state
from station.engine.steps import StepRunner, Tally
from station.events import (
    InstrumentIdentified,
    PromptAnswered,
    PromptRequested,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
)
from station.plan import values as v
from station.plan.tree import ActionNode, BoundPlan, GroupNode, Node, title


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


def _uncancel_self() -> None:
    """Consume the current task's cancel requests, so teardown and the safe state can still await."""
    task = asyncio.current_task()
    while task is not None and task.cancelling():
        task.uncancel()


class Sequencer:
    """One run of ``bound`` on ``instruments`` for ``info``'s pack; events go to ``outlets``.

    After ``run()``: ``verdict``, ``abort_reason`` (what stopped it, if anything) and ``lost``
    (roles whose connection failed during the run: to be re-opened before the next one).
    """

    def __init__(self, bound: BoundPlan, instruments: Instruments, info: RunInfo,
                 outlets: Outlets | None = None, *, stop_on_failure: bool = False) -> None:
        outlets = outlets or Outlets()
        self.bound = bound
        self.info = info
        self.run_id = info.run_id
        self.stop_on_failure = stop_on_failure or bound.plan.on_failure == "stop"
        self._instruments = instruments
        self._prompt_handler = outlets.prompt_handler
        self.events = Emitter(info.run_id, outlets.critical, outlets.subscribers)
        self.tally = Tally()
        self.verdict: str | None = None
        self.lost: frozenset[str] = frozenset()
        self._main_task: asyncio.Task[Any] | None = None
        self._ending = False  # True once teardown and the safe state have begun
        self._steps: StepRunner | None = None  # once the instruments are open (run())
        self._watchers: Watchers | None = None

    @property
    def abort_reason(self) -> RunAborted | None:
        """What stopped the run, once something did (a monitor, an interlock, the operator, a signal)."""
        return self.tally.abort_reason

    def log(self, message: str, level: str = "info") -> None:
        self.events.log(message, level)

    # -- abort -----------------------------------------------------------------------------
    def abort(self, reason: str, *, source: str = "operator") -> None:
        """Stop the run now and go to the safe state. Safe to call from any callback in the loop.

        Once main is over (teardown or the safe state running) nothing is cut short: the
        request is only noted in the record.
        """
        if self._ending:
            self.log(f"{source}: {reason}: noted; teardown and the safe state go on", "warning")
            return
        if self.tally.abort_reason is None:
            self.tally.abort_reason = RunAborted(reason, source=source)
        if self._main_task is not None and not self._main_task.done():
            self._main_task.cancel()

    async def prompt(self, path: str, kind: str, message: str, pattern: str | None, default: str | None) -> str:
        emit = self.events.emit
        emit(PromptRequested, path=path, style=kind, message=message, pattern=pattern)
        if self._prompt_handler is not None:
            request = PromptRequested(self.run_id, *self.events.stamp(), path, kind, message, pattern)
            answer = await self._prompt_handler(request)
        elif default is not None:
            answer = default
        else:
            raise PromptUnavailable(f"prompt '{message}' needs an operator (no default given)")
        emit(PromptAnswered, path=path, answer=str(answer))
        return str(answer)

    # -- the run ---------------------------------------------------------------------------
    def names(self) -> ChainMap[str, Any]:
        info = self.info
        base = {"variant": self.bound.variant, "serial": info.serial, "fixture": info.fixture_id,
                "station": info.station_id}
        return ChainMap({}, self.tally.results, self.bound.parameters, base)

    async def _open(self) -> Opened:
        given = self._instruments
        if given.opener is None:
            return Opened(given.drivers, given.identities)
        return await given.opener()

    async def run(self) -> str:
        """Open the instruments (``Instruments.opener``), run the plan; return the verdict. Never
        raises for plan/instrument trouble."""
        opened = await self._open()
        given = self._instruments
        self.events.start()
        services = RunServices(opened.drivers, self.info.serial, self.bound.parameters, self.events, self.prompt)
        self._watchers = Watchers(opened.drivers, emit=self.events.emit, abort=self.abort,
                                  interlock_period=given.interlock_period)
        self._steps = StepRunner(services, self.tally, self._watchers, locks=given.locks)
        plan, info, emit = self.bound.plan, self.info, self.events.emit
        emit(
            RunStarted, serial=info.serial, plan_id=plan.id, plan_version=plan.version,
            plan_title=plan.title, plan_path=self.bound.path, plan_sha256=self.bound.sha256,
            variant=self.bound.variant, parameters=v.jsonable(self.bound.parameters),
            station_id=info.station_id, fixture_id=info.fixture_id, operator=info.operator,
            software_version=__version__, simulated=info.simulated, faults=list(info.faults),
            planned_steps=self.bound.leaf_count(), mes_transaction_id=info.mes_transaction_id,
            plan_libraries=dict(self.bound.libraries), plan_release_sha256=self.bound.release_sha256,
            **info.provenance,
        )
        for identity in opened.identities:
            emit(InstrumentIdentified, info=identity)
        reason: str | None = None
        self._main_task = asyncio.current_task()
        if opened.error:
            self.tally.count("error")
            reason = f"instrument setup: {opened.error}"
            self.log(reason, "error")
        try:
            if self.abort_reason is not None:  # asked to stop before it began (a signal, the UI)
                raise self.abort_reason
            if not opened.error:
                await self._phase(self.bound.setup, "setup")
            if not self._stop_main():
                await self._phase(self.bound.main, "main")
        except asyncio.CancelledError:
            if self.tally.abort_reason is None:
                self.tally.abort_reason = RunAborted("run cancelled", source="signal")
            _uncancel_self()  # our own cancellation: teardown and the safe state must still await
        except RunAborted as err:
            self.tally.abort_reason = self.tally.abort_reason or err
        except Exception as err:  # an engine bug must still end in the safe state, recorded
            self.tally.count("error")
            reason = f"internal error: {type(err).__name__}: {err}"
        finally:
            self._main_task = None
        if self.abort_reason is not None:
            reason = f"{self.abort_reason.source}: {self.abort_reason.reason}"
        self._ending = True  # from here on an abort is only noted (see abort())
        return await _uncancellable(self._finish(reason, opened), self.log)

    async def _finish(self, reason: str | None, opened: Opened) -> str:
        """Teardown, the safe state, the verdict and ``RunFinished``: never cancelled."""
        assert self._steps is not None
        if not opened.error:
            await self._teardown()
        safe = await run_safe_state(opened.drivers, self._instruments.locks, self.events.emit)
        self._steps.deadlines.close()
        self.lost = frozenset(self.tally.lost | safe.lost)
        verdict = self._verdict()
        tally = self.tally
        if reason is None and verdict == "FAIL":
            reason = f"failed at {tally.failed_at}"
        if reason is None and verdict == "ERROR" and tally.errored_at:
            reason = f"error at {tally.errored_at[0]}: {tally.errored_at[1]}"
        if not safe.confirmed:  # said after what ended the run, never instead of it
            problem = f"safe state not confirmed: {safe.describe()}"
            if verdict in ("PASS", "FAIL"):
                verdict = "ERROR"
            reason = f"{reason}; {problem}" if reason else problem
        self.verdict = verdict
        self.events.emit(RunFinished, verdict=verdict, reason=reason, duration_s=round(self.events.stamp()[1], 6))
        return verdict

    def _stop_main(self) -> bool:
        outcomes = self.tally.outcomes
        return outcomes.get("error", 0) > 0 or (self.stop_on_failure and outcomes.get("failed", 0) > 0)

    def _verdict(self) -> str:
        if self.abort_reason is not None:
            return "ABORTED"
        if self.tally.outcomes.get("error"):
            return "ERROR"
        if self.tally.outcomes.get("failed"):
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
                    _uncancel_self()
                    self.log("teardown step interrupted; continuing with the next", "warning")
        finally:
            self._main_task = None

    async def _phase(self, nodes: list[Node], phase: str) -> None:
        names = self.names()
        outcomes = self.tally.outcomes
        for node in nodes:
            await self._node(node, names, phase, phase)
            if phase == "main" and self._stop_main():
                break
            if phase == "main" and self.stop_on_failure and outcomes.get("failed"):
                break
            if phase == "setup" and (outcomes.get("failed") or outcomes.get("error")):
                break

    # -- nodes -----------------------------------------------------------------------------
    async def _node(self, node: Node, names: ChainMap[str, Any], prefix: str, phase: str) -> None:
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
        if isinstance(node, GroupNode):
            await self._group(node, names, path, phase)
            return
        assert self._steps is not None
        await self._steps.step(node, names, path, phase)

    def _skip_or_error(self, node: Node, path: str, phase: str, error: str | None,
                       names: ChainMap[str, Any] | None = None) -> None:
        outcome = "error" if error else "skipped"
        emit = self.events.emit
        action = node.spec.name if isinstance(node, ActionNode) else "group"
        emit(StepStarted, path=path, step_id=node.id or "", name=title(node, names), action=action, phase=phase)
        emit(StepFinished, path=path, step_id=node.id or "", outcome=outcome, duration_s=0.0, error=error)
        self.tally.count(outcome)

    async def _group(self, node: GroupNode, names: ChainMap[str, Any], path: str, phase: str) -> None:
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

    async def _group_body(self, node: GroupNode, names: ChainMap[str, Any], path: str, phase: str) -> None:
        assert self._watchers is not None
        watchers = self._watchers.start(node, names, path)
        try:
            if node.parallel:
                await self._parallel(node.children, names, path, phase)
            else:
                for child in node.children:
                    await self._node(child, names, path, phase)
                    if self._stop_main() and phase != "teardown":
                        break
        finally:
            await stop(watchers)
            for child in node.finally_:
                try:
                    await self._node(child, names, path, phase)
                except RunAborted as err:
                    self.log(f"during finally of {path}: {err.reason}", "warning")

    async def _parallel(self, nodes: list[Node], names: ChainMap[str, Any], path: str, phase: str) -> None:
        tasks = [asyncio.create_task(self._node(n, names.new_child(), path, phase)) for n in nodes]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
