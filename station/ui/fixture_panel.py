"""One fixture's column: serial input, plan/variant, progress, live values, steps, verdict.

Scan (or type) a serial + Enter → the catalogue's plan and variant are shown; Enter again
starts the run in a worker. Events arrive from the session thread as messages; a prompt opens
a modal dialog whose answer goes back to the waiting run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, ProgressBar, Static

from station.events import Event, PromptRequested, RunFinished
from station.ui.dialogs import PromptDialog
from station.ui.policy import Refusal, Resolved, resolve
from station.ui.run_state import VERDICT_STYLES, RunState, format_live, typical_duration

if TYPE_CHECKING:
    from station.ui.app import OperatorApp

REFRESH_S = 0.1  # real seconds between redraws of a running column
FINISH_WAIT_S = 2.0  # real seconds to wait for the RunFinished message after the run returned


class RunEvent(Message):
    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class PromptNeeded(Message):
    def __init__(self, request: PromptRequested, give: Callable[[str], None]) -> None:
        super().__init__()
        self.request = request
        self.give = give


class PromptWithdrawn(Message):
    pass


class LiveValues(Message):
    def __init__(self, values: dict[str, float]) -> None:
        super().__init__()
        self.values = values


class RunEnded(Message):
    """Posted to the app when a run on this fixture finished (history refresh)."""

    def __init__(self, fixture: str, verdict: str) -> None:
        super().__init__()
        self.fixture = fixture
        self.verdict = verdict


class FixturePanel(Vertical):
    """The column of one fixture."""

    def __init__(self, fixture: str, preset: str | None) -> None:
        super().__init__(id=f"fx-{fixture}", classes="fixture")
        self.fixture = fixture
        self.preset = preset
        self.state = RunState()
        self.pending: Resolved | None = None
        self.running = False
        self.typical: float | None = None
        self._dialog: PromptDialog | None = None
        self._refresh_timer = None
        self._finished = asyncio.Event()

    @property
    def station(self) -> "OperatorApp":
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        title = f"{self.fixture}" + (f" · sim {self.preset}" if self.preset and self.station.sim else "")
        yield Label(title, classes="fx-title")
        yield Input(placeholder="scan pack serial, Enter", id=f"serial-{self.fixture}", classes="serial", compact=True)
        yield Static("ready", classes="info")
        with Horizontal(classes="progress-row"):
            yield ProgressBar(total=1, show_eta=False, classes="progress")
            yield Label("", classes="clock")
        yield Static("", classes="live")
        yield Static("", classes="verdict")
        with VerticalScroll(classes="steps-scroll"):
            yield Static("", classes="steps")

    @property
    def serial_input(self) -> Input:
        return self.query_one(".serial", Input)

    def say(self, text: str, style: str = "") -> None:
        self.query_one(".info", Static).update(Text(text, style=style))

    # -- start ---------------------------------------------------------------------------------
    @on(Input.Submitted, ".serial")
    def _scanned(self, event: Input.Submitted) -> None:
        event.stop()
        if self.running:
            return
        serial = event.value.strip()
        if self.pending is not None and self.pending.req.serial == serial:
            self.begin(self.pending)
            return
        self.pending = None
        try:
            self.pending = resolve(self.station.config, serial=serial, fixture=self.fixture,
                                   operator=self.station.operator, sim=self.station.sim,
                                   overrides=self.station.overrides(), auth=self.station.auth)
        except Refusal as err:
            self.say(f"✘ {err}", "bold red")
            return
        notes = "".join(f" · {n}" for n in self.pending.notes)
        self.say(f"{serial}: {self.pending.summary}{notes} — Enter to start", "bold")

    def begin(self, resolved: Resolved) -> None:
        self.pending = None
        self.running = True
        self.serial_input.disabled = True
        self.state = RunState(serial=resolved.req.serial)
        self._finished = asyncio.Event()
        self.query_one(".steps-scroll", VerticalScroll).anchor()  # follow the newest step until scrolled
        self.query_one(".verdict", Static).update("")
        self.query_one(".verdict").remove_class(*[f"v-{v}" for v in VERDICT_STYLES])
        self.query_one(".verdict").display = False
        self.query_one(".live", Static).update("")
        self.say(f"{resolved.req.serial}: {resolved.summary} — checking instruments…")
        self._run(resolved)

    @work(exclusive=True, group="run")
    async def _run(self, resolved: Resolved) -> None:
        backend = self.station.backend
        verdict = "ERROR"
        try:
            check = await asyncio.wrap_future(backend.submit(backend.check(self.fixture)))
            self.station.show_instruments(self.fixture, check.rows)
            if check.problems:
                self.say("✘ cannot start: " + "; ".join(check.problems), "bold red")
                verdict = ""
                return
            history = await asyncio.wrap_future(backend.submit(backend.history()))
            self.typical = typical_duration(history, resolved.prep.bound.plan.id, resolved.prep.bound.variant)
            self.say(f"{resolved.req.serial}: {resolved.summary} — running", "bold")
            coro = backend.run(resolved.req, resolved.prep, on_event=lambda e: self.post_message(RunEvent(e)),
                               ask=lambda r, give: self.post_message(PromptNeeded(r, give)),
                               withdraw=lambda: self.post_message(PromptWithdrawn()),
                               on_live=lambda v: self.post_message(LiveValues(v)))
            verdict, run_id, _record = await asyncio.wrap_future(backend.submit(coro))
            # the events travel as messages and may still be queued: let RunFinished land first
            try:
                await asyncio.wait_for(self._finished.wait(), FINISH_WAIT_S)
            except asyncio.TimeoutError:
                pass
            self.state.run_id = run_id
            self.state.verdict = self.state.verdict or verdict
        except Exception as err:  # the station could not run it: an ERROR the operator sees
            self.state.verdict, self.state.reason = "ERROR", f"{type(err).__name__}: {err}"
        finally:
            self.running = False
            if self.is_attached:  # not when the app is closing
                self._ready_for_next(verdict)

    def _ready_for_next(self, verdict: str) -> None:
        """Verdict banner (if the run happened), serial field cleared and focused for the next scan."""
        self.serial_input.disabled = False
        self.serial_input.value = ""
        if verdict:
            self._show_verdict()
            self.post_message(RunEnded(self.fixture, self.state.verdict or verdict))
        self.serial_input.focus()

    # -- events from the session thread ------------------------------------------------------
    @on(RunEvent)
    def _event(self, message: RunEvent) -> None:
        try:
            self.state.apply(message.event)
            if isinstance(message.event, RunFinished):
                self._finished.set()
                self._show_verdict()
            elif self._refresh_timer is None:  # redraw at most every REFRESH_S: events come in bursts
                self._refresh_timer = self.set_timer(REFRESH_S, self._timed_refresh)
        except Exception as err:  # a display bug must not take the screen down: show it
            self.say(f"⚠ display error: {type(err).__name__}: {err}", "bold magenta")

    def _timed_refresh(self) -> None:
        self._refresh_timer = None
        self._refresh()

    def _refresh(self) -> None:
        s = self.state
        self.query_one(ProgressBar).update(total=max(s.planned, s.done, 1), progress=s.done)
        left = s.time_left(self.typical)
        self.query_one(".clock", Label).update(
            f"{s.t:5.0f} s" + (f" ~{left:.0f} s left" if left is not None and s.verdict is None else ""))
        self.query_one(".steps", Static).update(s.render_steps())
        if s.in_safe_state:
            self.say(f"{s.serial}: going to the safe state…", "bold yellow")

    @on(LiveValues)
    def _live(self, message: LiveValues) -> None:
        if self.running:
            self.query_one(".live", Static).update(format_live(message.values))

    @on(PromptNeeded)
    def _prompt(self, message: PromptNeeded) -> None:
        dialog = PromptDialog(self.fixture, message.request)
        self._dialog = dialog

        def answered(text: str | None) -> None:
            self._dialog = None
            if text is not None:
                message.give(text)

        self.app.push_screen(dialog, answered)

    @on(PromptWithdrawn)
    def _withdrawn(self) -> None:
        dialog, self._dialog = self._dialog, None
        if dialog is not None and dialog.is_attached:
            dialog.dismiss(None)

    # -- verdict -------------------------------------------------------------------------------
    def _show_verdict(self) -> None:
        s = self.state
        if s.verdict is None:
            return
        banner = self.query_one(".verdict", Static)
        text = Text(f" {s.verdict} ", style="bold")
        text.append(f"\n{s.serial} · record {s.run_id or '—'}")
        if s.reason:
            text.append(f"\n{s.reason}")
        for m in s.failed_measurements()[:4]:
            text.append(f"\n✘ {m.path.split('/')[-1]} {m.name}: {m.text}")
        for line in s.errored_steps()[:3]:
            text.append(f"\n⚠ {line.path.split('/')[-1]}: {line.error}")
        banner.update(text)
        banner.add_class(f"v-{s.verdict}")
        banner.display = True
        self._refresh()
        self.say(f"{s.serial}: {s.verdict} — scan the next pack", VERDICT_STYLES.get(s.verdict, ""))

    def abort(self) -> bool:
        """Ask the backend to abort this fixture's run (after the operator confirmed)."""
        if not self.running:
            return False
        self.say(f"{self.state.serial}: aborting — going to the safe state…", "bold yellow")
        return self.station.backend.abort(self.fixture)
