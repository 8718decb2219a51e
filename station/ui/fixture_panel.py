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

from station.events import Event, PromptRequested, RunFinished, RunStarted
from station.ui.badge import Badge
from station.ui.dialogs import PromptDialog
from station.ui.line_badges import drift_badge
from station.ui.policy import Refusal, Resolved, resolve
from station.ui.run_state import VERDICT_STYLES, RunState, format_live, typical_duration
from station.ui.safe_text import data, sanitize
from station.ui.scan_input import ScanInput
from station.ui.verdict import OTHER_ADVICE, disposition, glyph_width, glyphs, plain_words

if TYPE_CHECKING:
    from station.ui.app import OperatorApp

REFRESH_S = 0.1  # real seconds between redraws of a running column
TICK_S = 0.5  # real seconds between clock updates while a run is in progress (long steps too)
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

    def __init__(self, fixture: str, verdict: str, serial: str = "") -> None:
        super().__init__()
        self.fixture = fixture
        self.verdict = verdict
        self.serial = serial


class VerdictPanel(Static):
    """The verdict over the whole column: block letters when they fit, then serial, record, what
    failed in plain words and where the pack goes."""

    def __init__(self, **kwargs) -> None:
        super().__init__("", markup=False, **kwargs)
        self.word = ""
        self.details = Text()

    def show(self, word: str, details: Text) -> None:
        self.word, self.details = word, details
        self.refresh(layout=True)

    def render(self) -> Text:
        art = glyphs(self.word)
        out = Text(justify="center")
        # block letters when they fit beside the details (at 60x15 the words matter more)
        room = self.size.height - len(self.details.plain.rstrip("\n").split("\n"))
        if art and glyph_width(self.word) <= max(self.size.width - 2, 0) and room >= len(art):
            out.append("\n".join(art) + "\n", style="bold")
        else:
            out.append(f"{self.word}\n", style="bold")
        out.append_text(self.details)
        return sanitize(out)


class FixturePanel(Vertical):
    """The column of one fixture."""

    def __init__(self, fixture: str, preset: str | None) -> None:
        super().__init__(id=f"fx-{fixture}", classes="fixture")
        self.fixture = fixture
        self.preset = preset
        self.state = RunState()
        self.pending: Resolved | None = None
        self.pending_scan = ""
        self.resolved: Resolved | None = None  # the run in progress or last run
        self.running = False
        self.typical: float | None = None
        self._dialog: PromptDialog | None = None
        self._refresh_timer = None
        self._tick_timer = None
        self._started_at: float | None = None  # station-clock time of RunStarted (s)
        self._finished = asyncio.Event()

    @property
    def station(self) -> OperatorApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        title = f"{self.fixture}" + (f" · sim {self.preset}" if self.preset and self.station.sim else "")
        with Horizontal(classes="fx-head"):
            yield Label(Text(title), classes="fx-title", markup=False)
            yield Label("", classes="fault-badge", markup=False)
        yield Badge(classes="drift-badge")
        yield ScanInput(placeholder="scan pack serial, Enter", id=f"serial-{self.fixture}", classes="serial",
                        compact=True)
        yield Static("ready", classes="info", markup=False)
        with Horizontal(classes="progress-row"):
            yield ProgressBar(total=1, show_eta=False, classes="progress")
            yield Label("", classes="clock", markup=False)
        yield Static("", classes="live", markup=False)
        yield VerdictPanel(classes="verdict")
        with VerticalScroll(classes="steps-scroll"):
            yield Static("", classes="steps", markup=False)

    @property
    def serial_input(self) -> ScanInput:
        return self.query_one(".serial", ScanInput)

    def say(self, text: str, style: str = "") -> None:
        self.query_one(".info", Static).update(data(text, style))

    def on_descendant_focus(self) -> None:
        if self.station.selected != self.fixture:
            self.station.select_fixture_quietly(self.fixture)

    def show_faults(self, faults: tuple[str, ...]) -> None:
        """The badge of the faults that will be (or are being) injected on this fixture."""
        badge = self.query_one(".fault-badge", Label)
        badge.update(data(f" FAULT: {' '.join(faults)} ", "bold white on dark_red") if faults else Text(""))
        badge.display = bool(faults)

    def show_drift(self, measurements: list[str]) -> None:
        """The badge of this fixture's drifting reference measurements (hidden when none)."""
        for badge in self.query(Badge):  # none before compose (a timer may tick mid-mount)
            badge.show(drift_badge(measurements))

    # -- start ---------------------------------------------------------------------------------
    @on(Input.Submitted, ".serial")
    def _scanned(self, event: Input.Submitted) -> None:
        event.stop()
        if self.running:
            return
        scan = event.value
        if self.pending is not None and self.pending_scan == scan:
            self.begin(self.pending)
            return
        self.pending = None
        try:
            self.pending = resolve(self.station.config, serial=scan, fixture=self.fixture,
                                   operator=self.station.operator, sim=self.station.sim,
                                   overrides=self.station.overrides(self.fixture), auth=self.station.auth,
                                   audit=self.station.audit)
        except Refusal as err:
            self.say(f"✘ {err}", "bold red")
            return
        self.pending_scan = scan
        notes = "".join(f" · {n}" for n in self.pending.notes)
        self.say(f"{self.pending.req.serial}: {self.pending.summary}{notes} — Enter to start", "bold")

    def begin(self, resolved: Resolved) -> None:
        self.pending = None
        self.resolved = resolved
        self.running = True
        self.serial_input.disabled = True
        self.state = RunState(serial=resolved.req.serial)
        self._finished = asyncio.Event()
        self._started_at = None
        self.query_one(".steps-scroll", VerticalScroll).anchor()  # follow the newest step until scrolled
        self.query_one(".steps-scroll").display = True
        verdict = self.query_one(".verdict", VerdictPanel)
        verdict.show("", Text())
        verdict.remove_class(*[f"v-{v}" for v in VERDICT_STYLES])
        verdict.display = False
        live = self.query_one(".live", Static)
        live.update("")
        live.remove_class("ended")
        self.show_faults(tuple(resolved.req.faults))
        self.say(f"{resolved.req.serial}: {resolved.summary} — checking instruments…")
        self._tick_timer = self.set_interval(TICK_S, self._tick)
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
            except TimeoutError:
                pass
            self.state.run_id = run_id
            self.state.verdict = self.state.verdict or verdict
        except Exception as err:  # the station could not run it: an ERROR the operator sees
            self.state.verdict, self.state.reason = "ERROR", f"{type(err).__name__}: {err}"
        finally:
            self.running = False
            if self._tick_timer is not None:
                self._tick_timer.stop()
                self._tick_timer = None
            if self.is_attached:  # not when the app is closing
                self._ready_for_next(verdict)

    def _ready_for_next(self, verdict: str) -> None:
        """Verdict banner (if the run happened), serial field cleared and focused for the next scan."""
        self.serial_input.disabled = False
        self.serial_input.value = ""
        self.serial_input.fresh = False
        self.show_faults(self.station.overrides(self.fixture).faults)
        if verdict:
            self._show_verdict()
            self.post_message(RunEnded(self.fixture, self.state.verdict or verdict, self.state.serial))
        if self.station.selected in (None, self.fixture) or self.station.focused is None:
            self.serial_input.focus()

    # -- events from the session thread ------------------------------------------------------
    @on(RunEvent)
    def _event(self, message: RunEvent) -> None:
        try:
            self.state.apply(message.event)
            if isinstance(message.event, RunStarted) and self._started_at is None:
                now = self.station.backend.now()
                self._started_at = None if now is None else now - message.event.t
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

    def elapsed(self) -> float:
        """Seconds since the run started on the station clock: ticks through long steps, not
        only when an event arrives (virtual seconds with --sim)."""
        s = self.state
        if s.verdict is not None or self._started_at is None:
            return s.t
        now = self.station.backend.now()
        return max(s.t, now - self._started_at) if now is not None else s.t

    def _tick(self) -> None:
        if self.running:
            self._show_clock()

    def _show_clock(self) -> None:
        s = self.state
        t = self.elapsed()
        takt = self.resolved.product.takt_s if self.resolved and self.resolved.product else None
        left = s.time_left(self.typical)
        text = Text(f"{t:5.0f} s")
        if takt:
            text.append(f" / takt {takt:.0f} s", style="bold red" if t > takt else "")
        if left is not None and s.verdict is None:
            text.append(f" ~{max(left - (t - s.t), 0):.0f} s left")
        self.query_one(".clock", Label).update(text)

    def _refresh(self) -> None:
        s = self.state
        self.query_one(ProgressBar).update(total=max(s.planned, s.done, 1), progress=s.done)
        self._show_clock()
        self.query_one(".steps", Static).update(sanitize(s.render_steps()))
        if s.in_safe_state:
            self.say(f"{s.serial}: going to the safe state…", "bold yellow")

    @on(LiveValues)
    def _live(self, message: LiveValues) -> None:
        if self.running and self.state.verdict is None:
            self.query_one(".live", Static).update(Text(format_live(message.values)))

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
        details = Text(f"{s.serial} · record {s.run_id[:12] or '—'}\n", style="bold")
        failed = s.failed_measurements()
        for m in failed[:3]:
            details.append("✘ " + plain_words(m.path.split("/")[-1], m.name, m.value, m.unit, m.limits) + "\n")
        for line in s.errored_steps()[:2]:
            details.append(f"⚠ {line.path.split('/')[-1]}: {line.error}\n")
        if s.reason and not failed:
            details.append(f"{s.reason}\n")
        if s.safe:
            ok = sum(1 for a in s.safe if a.ok)
            details.append(f"safe state: {ok} of {len(s.safe)} actions done\n",
                           style="" if ok == len(s.safe) else "bold")
        product = self.resolved.product if self.resolved else None
        if s.verdict == "FAIL":
            failed_paths = [m.path for m in failed] + [p for p, line in s.steps.items() if line.status == "failed"]
            details.append("→ " + disposition(product.dispositions if product else {}, failed_paths), style="bold")
        elif s.verdict in OTHER_ADVICE:
            details.append("→ " + OTHER_ADVICE[s.verdict], style="bold")
        banner = self.query_one(".verdict", VerdictPanel)
        banner.show(s.verdict, details)
        banner.remove_class(*[f"v-{v}" for v in VERDICT_STYLES])
        banner.add_class(f"v-{s.verdict}")
        banner.display = True
        self.query_one(".steps-scroll").display = False  # the verdict takes the column
        live = self.query_one(".live", Static)
        live.add_class("ended")  # greyed: these are the values at the end, not live any more
        if str(live.render()).strip():
            live.update(Text("at end: " + str(live.render()).removeprefix("at end: ")))
        self._refresh()
        self.say(f"{s.serial}: {s.verdict} — scan the next pack", VERDICT_STYLES.get(s.verdict, ""))

    def abort(self) -> bool:
        """Ask the backend to abort this fixture's run (after the operator confirmed)."""
        if not self.running:
            return False
        self.say(f"{self.state.serial}: aborting — going to the safe state…", "bold yellow")
        return self.station.backend.abort(self.fixture)
