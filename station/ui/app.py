"""The operator terminal UI (``station ui [--sim] [--station FILE]``).

The app holds one ``StationBackend`` (one Session, shared by every fixture column), the logged-in
operator and the screens. Keys: F1–F4 tabs, F5 log out, Ctrl+X abort (with confirmation), Ctrl+Q quit
(refused while a pack is running).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from textual import work
from textual.app import App
from textual.binding import Binding

from station.config import SIM_CONFIG, LoadedConfig, OperatorConfig, load_config
from drivers.base.diagnostics import InputError
from station.ui.backend import InstrumentRow, StationBackend
from station.ui.dialogs import ConfirmAbort, PromptDialog
from station.ui.fixture_panel import FixturePanel, RunEnded
from station.ui.policy import Overrides
from station.ui.screens import LoginScreen, MainScreen, TrainingPanel


class OperatorApp(App):
    """The EOL station's operator terminal."""

    CSS_PATH = "operator.tcss"
    TITLE = "EOL station"
    BINDINGS = [
        Binding("ctrl+x", "abort", "Abort run", priority=True),
        Binding("f1", "tab('tab-run')", "Run", show=False),
        Binding("f2", "tab('tab-station')", "Station", show=False),
        Binding("f3", "tab('tab-history')", "History", show=False),
        Binding("f4", "tab('tab-training')", "Training", show=False),
        Binding("f5", "logout", "Log out"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

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

    # -- lifecycle -----------------------------------------------------------------------------
    def on_mount(self) -> None:
        try:
            self.backend.start()
        except Exception as err:  # no session: say why, still allow reading it and quitting
            self.startup_error = f"station could not start: {type(err).__name__}: {err}"
        self.push_screen(LoginScreen())
        if self.startup_error:
            self.notify(self.startup_error, severity="error", timeout=60)

    def on_unmount(self) -> None:
        self.backend.stop()

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

    def overrides(self) -> Overrides:
        panels = self.main_screen.query(TrainingPanel) if self.main_screen else []
        return panels.first().overrides() if panels else Overrides()

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

    # -- actions -------------------------------------------------------------------------------
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
    OperatorApp(config, sim=sim).run()
    return 0
