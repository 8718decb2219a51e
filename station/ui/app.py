"""The operator terminal UI (``station ui [--sim] [--station FILE]``).

The app holds one ``StationBackend`` (one Session, shared by every fixture column), the logged-in
operator and the screens. Keys: F1–F4 select fixture F1–F4 (its serial field), F6 station,
F7 history, F8 training, F5 log out, Ctrl+X abort (with confirmation), Ctrl+Q quit (refused
while a pack is running). No command palette: an operator station has no developer keys.

Line badges (station/ui/line_badges.py), refreshed by timers, never a busy loop: a row under the
station header, only while something waits, says what the line database, the MES or the MQTT
broker still wait for (polled from the session's line services every ``DELIVERY_POLL_S``); each
fixture shows a REFERENCE DRIFT badge while its reference packs' control charts drift (read from
the station's result store in a worker thread at start, every ``DRIFT_POLL_S`` and after each
run of a reference pack).

Every string from outside (serials, plan text, instrument replies, stored records, error
messages) is shown as data, never parsed as markup. An unexpected error ends the app only after
every active fixture has gone to the safe state; ``station ui`` then exits 3.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import App
from textual.binding import Binding, BindingType

from drivers.base.diagnostics import InputError
from station.config import SIM_CONFIG, LoadedConfig, OperatorConfig, load_config
from station.signals import StopSignals, detach_terminal, note
from station.ui.backend import InstrumentRow, StationBackend
from station.ui.badge import Badge
from station.ui.dialogs import ConfirmAbort, PromptDialog
from station.ui.fixture_panel import FixturePanel, RunEnded
from station.ui.line_badges import delivery_badge, read_drift
from station.ui.policy import Overrides
from station.ui.safe_text import data, shown
from station.ui.screens import LoginScreen, MainScreen, TrainingPanel


class OperatorApp(App):
    """The EOL station's operator terminal."""

    CSS_PATH = "operator.tcss"
    TITLE = "EOL station"
    ENABLE_COMMAND_PALETTE = False  # operators get no command palette (developer actions)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+x", "abort", "Abort run", priority=True),
        *[Binding(f"f{n}", f"fixture({n})", f"Fixture F{n}", show=False) for n in range(1, 5)],
        Binding("f6", "tab('tab-station')", "Station", show=False),
        Binding("f7", "tab('tab-history')", "History", show=False),
        Binding("f8", "tab('tab-training')", "Training", show=False),
        Binding("f5", "logout", "Log out"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("ctrl+c", "refuse_copy", show=False, priority=True),  # not Textual's quit hint/copy
    ]
    CRASH_SAFE_WAIT_S = 120.0  # real seconds the runs get to reach the safe state after a UI error
    DELIVERY_POLL_S = 2.0  # real seconds between looks at the line delivery state (in memory)
    DRIFT_POLL_S = 600.0  # real seconds between reference-drift checks (other processes' runs)

    def __init__(self, config: LoadedConfig, *, sim: bool, db: str | None = None) -> None:
        super().__init__()
        self.config = config
        self.sim = sim
        self.backend = StationBackend(config, sim=sim, db=db)
        self.operator: OperatorConfig | None = None
        self.auth = None  # station.security.users.Authenticated of the operator logged in
        from station.security.audit import AuditLog, audit_path

        self.audit = AuditLog(audit_path(config, db))  # log-ins and refusals, beside the store
        self.main_screen: MainScreen | None = None
        self.startup_error: str | None = None
        self.selected: str | None = None  # the fixture an F-key or the focus last chose
        self.crash: BaseException | None = None
        self.stop_signals: StopSignals | None = None
        self.signalled: str | None = None  # the stop signal that ended the app
        self.delivery_shown: tuple[Text, Text] | None = None  # header badge and its tooltip
        self.drift: dict[str, list[str]] = {}  # fixture -> its drifting reference measurements

    # -- text from outside is data --------------------------------------------------------------
    def notify(self, message: str, *, title: str = "", severity="information", timeout: float | None = None,
               markup: bool = True) -> None:
        """Toasts never parse markup: their text is error messages, serials, instrument replies."""
        super().notify(shown(message), title=shown(title), severity=severity, timeout=timeout, markup=False)

    def _handle_exception(self, error: Exception) -> None:
        """An unexpected error: every active fixture to the safe state first, then exit non-zero."""
        if self.crash is None:
            self.crash = error
            try:
                self.backend.stop(timeout=self.CRASH_SAFE_WAIT_S)  # aborts each run, waits for its safe state
            except Exception as err:  # the traceback below still ends the app
                print(f"station ui: stopping the station failed: {type(err).__name__}: {err}", file=sys.stderr)
        super()._handle_exception(error)

    # -- lifecycle -----------------------------------------------------------------------------
    def on_mount(self) -> None:
        # SIGINT, SIGTERM, SIGHUP (terminal closed), SIGQUIT: every running fixture to the safe
        # state, then leave; later signals are noted in the records (station.signals, as the CLI).
        self.stop_signals = StopSignals(on_first=self._stop_signal).__enter__()
        self.stop_signals.attach(_AllFixtures(self.backend))
        try:
            self.backend.start()
        except Exception as err:  # no session: say why, still allow reading it and quitting
            self.startup_error = f"station could not start: {type(err).__name__}: {err}"
        self.push_screen(LoginScreen())
        if self.startup_error:
            self.notify(self.startup_error, severity="error", timeout=60)
            return
        self.set_interval(self.DELIVERY_POLL_S, self.poll_delivery)
        if self.config.config.reference_serials:
            self.set_interval(self.DRIFT_POLL_S, self.refresh_drift)
            self.refresh_drift()

    def _stop_signal(self, name: str) -> None:
        """The first stop signal: the runs were told to abort; leave once each is safe (the
        backend waits for their safe state when the app unmounts)."""
        self.signalled = name
        if name == "SIGHUP":
            # The terminal is gone: Textual's shutdown, which still draws, can wedge on it. The
            # station does not need it: once every fixture is safe and the session closed
            # (records committed), the process ends with 3 whatever the screen does.
            detach_terminal()
            threading.Thread(target=self._safe_then_exit, name="hangup-exit", daemon=True).start()
        self.exit(return_code=3)

    def _safe_then_exit(self) -> None:
        self.backend.stop()  # aborts every run and waits for its safe state, closes the session
        note(f"station ui: {self.signalled} received: every active fixture was sent to the safe state")
        os._exit(3)

    def on_unmount(self) -> None:
        self.backend.stop()
        if self.stop_signals is not None:
            self.stop_signals.__exit__(None, None, None)
            self.stop_signals = None

    def logged_in(self, operator: OperatorConfig, auth=None) -> None:
        self.operator, self.auth = operator, auth
        self.main_screen = MainScreen()
        self.switch_screen(self.main_screen)
        if not self.startup_error:
            self.check_instruments()
            self.refresh_history()

    # -- services for the panels -----------------------------------------------------------------
    def _main_query(self, selector):
        """Widgets of the main screen, even while a dialog is on top (``App.query`` sees the top screen)."""
        return self.main_screen.query(selector) if self.main_screen is not None else []

    def overrides(self, fixture: str) -> Overrides:
        """The engineer's training choices for one fixture (faults apply to that fixture only)."""
        panels = self.main_screen.query(TrainingPanel) if self.main_screen else []
        return panels.first().overrides(fixture) if panels else Overrides()

    def show_fault_badges(self) -> None:
        for panel in self._main_query(FixturePanel):
            if not panel.running:
                panel.show_faults(self.overrides(panel.fixture).faults)

    def show_instruments(self, fixture: str, rows: list[InstrumentRow]) -> None:
        for panel in self._main_query("#station-panel"):
            panel.show(fixture, rows)  # type: ignore[attr-defined]

    def show_startup(self, key: str, lines: list[str]) -> None:
        for panel in self._main_query("#station-panel"):
            panel.show_startup(key, lines)  # type: ignore[attr-defined]

    @work(group="station", exclusive=True)
    async def check_instruments(self) -> None:
        """Open and identify every fixture's instruments now, for the station panel, with the
        start-up check: interrupted runs (packs without a verdict) and each fixture's safe state."""
        for line in self.backend.interrupted:
            self.notify(line, severity="warning", timeout=60)
        for fixture in self.config.fixture_ids():
            try:
                check = await asyncio.wrap_future(self.backend.submit(self.backend.check(fixture)))
            except Exception as err:
                self.notify(f"{fixture}: {type(err).__name__}: {err}", severity="error", timeout=30)
                continue
            self.show_instruments(fixture, check.rows)
            self.show_startup(fixture, check.startup)
            if check.problems:
                self.notify(f"{fixture}: " + "; ".join(check.problems), severity="error", timeout=30)
        self.show_startup("", self.backend.interrupted)  # the main screen is composed by now

    # -- line badges ---------------------------------------------------------------------------
    def poll_delivery(self) -> None:
        """The header's delivery badge from the line services' state (a timer's tick)."""
        try:
            self.delivery_shown = delivery_badge(self.backend.delivery())
        except Exception as err:  # a display bug must not stop the station: say it in the badge
            self.delivery_shown = (data(f" delivery state unreadable: {type(err).__name__}: {err} ",
                                        "bold black on yellow"), Text(""))
        self.show_line_badges()

    @work(thread=True, group="drift", exclusive=True)
    def refresh_drift(self) -> None:
        """Read the reference drift from the station's result store (a thread: SQL, maybe slow)."""
        cfg = self.config.config
        try:
            flags = read_drift(self.backend.store_path(), cfg.station_id, cfg.reference_serials,
                               development=cfg.mode == "development", simulated=self.sim)
        except Exception as err:  # a store or a bug here must not stop production: say it
            self._from_thread(self.notify, f"reference drift not checked: {type(err).__name__}: {err}",
                              severity="warning", timeout=30)
            return
        self._from_thread(self._drift_read, flags)

    def _from_thread(self, callback, *args, **kwargs) -> None:
        try:
            self.call_from_thread(callback, *args, **kwargs)
        except RuntimeError:  # the app is closing: nothing left to show it on
            pass

    def _drift_read(self, flags: dict[str, list[str]]) -> None:
        self.drift = flags
        self.show_line_badges()

    def show_line_badges(self) -> None:
        """Put the current delivery and drift state on the main screen (if it is up)."""
        for badge in self._main_query("#delivery-badge"):
            if isinstance(badge, Badge):
                badge.show(*(self.delivery_shown or (None, None)))
        for panel in self._main_query(FixturePanel):
            panel.show_drift(self.drift.get(panel.fixture, []))

    @work(group="history", exclusive=True)
    async def refresh_history(self) -> None:
        try:
            runs = await asyncio.wrap_future(self.backend.submit(self.backend.history()))
        except Exception as err:
            self.notify(f"history: {type(err).__name__}: {err}", severity="error")
            return
        for panel in self._main_query("#history-panel"):
            panel.show(runs)  # type: ignore[attr-defined]

    def on_run_ended(self, message: RunEnded) -> None:
        self.refresh_history()
        if message.serial in self.config.config.reference_serials:
            self.refresh_drift()

    # -- actions -------------------------------------------------------------------------------
    def action_refuse_copy(self) -> None:
        self.notify("Ctrl+C does nothing here: Ctrl+X aborts a run, Ctrl+Q quits", severity="warning")

    def action_fixture(self, n: int) -> None:
        """F<n>: the fixture named F<n> (else the n-th), its column on the Run tab, its serial field."""
        ids = self.config.fixture_ids()
        fixture = f"F{n}" if f"F{n}" in ids else (ids[n - 1] if n <= len(ids) else None)
        if fixture is None or self.main_screen is None or self.screen is not self.main_screen:
            if fixture is None:
                self.notify(f"this station has no fixture F{n}", severity="warning")
            return
        for tabs in self._main_query("#tabs"):
            tabs.active = "tab-run"  # type: ignore[attr-defined]
        self.select_fixture(fixture)

    def select_fixture_quietly(self, fixture: str) -> None:
        """Mark the fixture chosen (its column highlighted) without moving the focus."""
        self.selected = fixture
        for panel in self._main_query(FixturePanel):
            panel.set_class(panel.fixture == fixture, "selected")

    def select_fixture(self, fixture: str) -> None:
        self.select_fixture_quietly(fixture)
        for panel in self._main_query(FixturePanel):
            if panel.fixture == fixture:
                target = panel.query_one(".steps-scroll") if panel.running else panel.serial_input
                # now and again after the tab switch has been laid out (a hidden pane refuses focus)
                target.focus()
                self.call_after_refresh(target.focus)

    def selected_panel(self) -> FixturePanel | None:
        panels = list(self._main_query(FixturePanel))
        return next((p for p in panels if p.fixture == self.selected), panels[0] if panels else None)

    def action_tab(self, tab: str) -> None:
        for tabs in self._main_query("#tabs"):
            panes = tabs.query(f"#{tab}")  # type: ignore[attr-defined]
            if not panes:
                continue
            tabs.active = tab  # type: ignore[attr-defined]
            # the tabs follow the focus, so the focus must move into the new pane
            idle = [p.serial_input for p in panes.first().query(FixturePanel) if not p.running]
            target = idle or list(panes.first().query("DataTable, Select, Input"))
            if target:
                target[0].focus()

    def _abort_target(self) -> FixturePanel | None:
        running = [p for p in self._main_query(FixturePanel) if p.running]
        if isinstance(self.screen, PromptDialog):
            running = [p for p in running if p.fixture == self.screen.fixture] or running
        focused = self.focused
        for panel in running:
            if focused is not None and panel in focused.ancestors_with_self:
                return panel
        return running[0] if running else None

    def action_abort(self) -> None:
        if isinstance(self.screen, ConfirmAbort):
            return
        panel = self._abort_target()
        if panel is None:
            self.notify("no run in progress")
            return

        def decided(yes: bool | None) -> None:
            if yes and panel.running:
                panel.abort()

        self.push_screen(ConfirmAbort(panel.fixture, panel.state.serial), decided)

    def action_logout(self) -> None:
        if self.backend.busy:
            self.notify("a pack is running: finish or abort it before logging out", severity="warning")
            return
        if self.main_screen is not None and self.screen is self.main_screen:
            if self.auth is not None:
                self.audit.append("logout", operator=self.operator.id if self.operator else "", where="ui")
            self.operator, self.auth, self.main_screen = None, None, None
            self.switch_screen(LoginScreen())

    async def action_quit(self) -> None:
        if self.backend.busy:
            self.notify("a pack is running: abort it first (Ctrl+X)", severity="warning")
            return
        self.exit()


class _AllFixtures:
    """The stop signals' target in the UI: every fixture the backend runs (thread-safe)."""

    def __init__(self, backend: StationBackend) -> None:
        self.backend = backend

    def abort(self, reason: str, *, source: str = "operator") -> None:
        self.backend.abort_all(reason, source=source)

    def log(self, message: str, level: str = "info") -> None:
        self.backend.note_all(message, level)


def ui_command(sim: bool, station: str | None) -> int:
    """Entry point of ``station ui``: 0 on a normal exit, 2 for a bad or missing config."""
    if station is None and not sim:
        print("station ui: give --station FILE, or --sim for the simulated station", file=sys.stderr)
        return 2
    try:
        config = load_config(Path(station) if station else SIM_CONFIG)
    except InputError as err:
        print(err, file=sys.stderr)
        return 2
    app = OperatorApp(config, sim=sim)
    try:
        app.run()
    except Exception as err:  # outside Textual's own handling: still leave every fixture safe
        app.crash = app.crash or err
        app.backend.stop(timeout=OperatorApp.CRASH_SAFE_WAIT_S)
        print(f"station ui: {type(err).__name__}: {err}", file=sys.stderr)
    if app.signalled is not None:
        note(f"station ui: {app.signalled} received: every active fixture was sent to the safe state "
             "(see the run records)")
        return 3
    if app.crash is not None or app.return_code:
        note("station ui: stopped after an unexpected error; every active fixture was sent to the safe "
             "state (see the run records)")
        return 3
    return 0
