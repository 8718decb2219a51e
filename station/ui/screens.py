"""The log-in screen and the main screen (fixtures, station, history, training tabs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Select, Static, TabbedContent, TabPane

from station.ui.badge import Badge
from station.ui.fixture_panel import FixturePanel
from station.ui.panels import HistoryPanel, StationPanel
from station.ui.policy import Overrides, Refusal, login, may_choose_plan, plan_files
from station.ui.safe_text import data
from station.ui.scan_input import StrayKeys

if TYPE_CHECKING:
    from station.config import OperatorConfig
    from station.ui.app import OperatorApp


class LoginScreen(Screen):
    """Operator id (typed or scanned from a badge) + Enter; then the PIN when the station asks
    for one (production: everyone; development: whoever has one on file). Every refusal is
    audited (station.security.users)."""

    def compose(self) -> ComposeResult:
        app: OperatorApp = self.app  # type: ignore[assignment]
        self.pending: OperatorConfig | None = None  # known id, waiting for its PIN
        with Vertical(id="login-box"):
            yield Label(data(f"{app.config.config.station_id} · {'SIMULATED station' if app.sim else 'station'}"),
                        classes="dialog-title", markup=False)
            yield Label("Operator id:")
            yield Input(placeholder="scan badge or type id, Enter", id="login-id")
            yield Label("PIN:", id="login-pin-label")
            yield Input(placeholder="PIN, Enter", id="login-pin", password=True)
            yield Label("", id="login-error", classes="error", markup=False)

    def on_mount(self) -> None:
        self._ask_pin(False)
        self.query_one("#login-id").focus()

    def _ask_pin(self, show: bool) -> None:
        self.query_one("#login-pin-label").display = show
        pin = self.query_one("#login-pin", Input)
        pin.display, pin.value = show, ""
        if show:
            pin.focus()

    def _error(self, text: str) -> None:
        self.query_one("#login-error", Label).update(data(text))  # an id is data, never markup

    @on(Input.Submitted, "#login-id")
    def _submitted(self, event: Input.Submitted) -> None:
        from station.security.users import AuthError, authenticate_badge, needs_credential, user_file

        app: OperatorApp = self.app  # type: ignore[assignment]
        value, event.input.value = event.value, ""
        self.pending = None
        self._ask_pin(False)
        try:
            token = authenticate_badge(app.config, app.audit, value.strip())
            if token is not None:  # a badge on file: the scan is the credential
                app.logged_in(login(app.config, token.operator), token)
                return
            operator = login(app.config, value)
            directory = user_file(app.config)
        except AuthError as err:
            self._error(str(err))
            return
        except Refusal as err:
            app.audit.append("refusal", what="authentication failed", operator=value.strip()[:64],
                             where="ui", station=app.config.config.station_id, detail=str(err))
            self._error(str(err))
            return
        if needs_credential(app.config, directory, operator):
            self.pending = operator
            self._error("")
            self._ask_pin(True)
            return
        app.logged_in(operator, None)

    @on(Input.Submitted, "#login-pin")
    def _pin(self, event: Input.Submitted) -> None:
        from station.security.users import AuthError, authenticate

        app: OperatorApp = self.app  # type: ignore[assignment]
        pin, event.input.value = event.value, ""
        if self.pending is None:
            return
        try:
            token = authenticate(app.config, app.audit, self.pending.id, pin=pin, where="ui")
        except AuthError as err:
            self._error(str(err))
            self.pending = None
            self._ask_pin(False)
            self.query_one("#login-id").focus()
            return
        app.logged_in(self.pending, token)


class TrainingPanel(Vertical):
    """Engineers: any plan and variant; with --sim, faults injected into one fixture's simulated pack."""

    def compose(self) -> ComposeResult:
        app: OperatorApp = self.app  # type: ignore[assignment]
        options = [(data(p.name), str(p)) for p in plan_files(app.config)]
        yield Label("Plan (blank: from the product catalogue)")
        yield Select(options, id="train-plan", prompt="from catalogue", compact=True)
        yield Label("Variant (blank: from the catalogue)")
        yield Input(id="train-variant", placeholder="e.g. car-400", compact=True)
        if app.sim:
            from sim.faults import CATALOGUE

            yield Label("Faults per fixture, space-separated NAME[:k=v,...] (shown as a badge on the fixture)")
            for fixture in app.config.fixture_ids():
                with Horizontal(classes="fault-row"):
                    yield Label(Text(f"{fixture}:"), classes="fault-label", markup=False)
                    yield Input(id=f"train-faults-{fixture}", placeholder="e.g. isolation_low", compact=True,
                                classes="train-faults")
            yield Static(Text("catalogue: " + " ".join(CATALOGUE), style="dim"), id="fault-names")
        else:
            yield Label("Faults need the simulator (station ui --sim)", classes="error")

    def overrides(self, fixture: str) -> Overrides:
        plan = self.query_one("#train-plan", Select).value
        variant = self.query_one("#train-variant", Input).value.strip()
        faults = self.query(f"#train-faults-{fixture}")
        text = faults.first(Input).value if faults else ""
        return Overrides(plan=plan if isinstance(plan, str) else None, variant=variant or None,
                         faults=tuple(text.split()))

    @on(Input.Changed, ".train-faults")
    def _faults_changed(self) -> None:
        self.app.show_fault_badges()  # type: ignore[attr-defined]


class MainScreen(Screen):
    def __init__(self) -> None:
        super().__init__()
        self.stray = StrayKeys(self, self._refuse_stray)

    def compose(self) -> ComposeResult:
        app: OperatorApp = self.app  # type: ignore[assignment]
        op = app.operator
        mode = "SIM" + (" · TRAINING" if may_choose_plan(op) else "") if app.sim else "HW"
        yield Label(data(f" {app.config.config.station_id} · {op.name or op.id} ({op.role}) · {mode}"), id="topbar",
                    markup=False)
        yield Badge(id="delivery-badge")  # what the line still waits for (when it does)
        with TabbedContent(id="tabs"):
            keys = "/".join(f"F{n}" for n in range(1, min(len(app.config.fixture_ids()), 4) + 1))
            with TabPane(f"Run ({keys}: fixture)", id="tab-run"), Horizontal(id="fixtures"):
                for fid, fx in app.config.config.fixtures.items():
                    yield FixturePanel(fid, fx.sim_preset)
            with TabPane("F6 Station", id="tab-station"):
                yield StationPanel(id="station-panel")
            with TabPane("F7 History", id="tab-history"):
                yield HistoryPanel(id="history-panel")
            if may_choose_plan(op):
                with TabPane("F8 Training", id="tab-training"):
                    yield TrainingPanel(id="training-panel")
        yield Footer()

    def on_mount(self) -> None:
        app: OperatorApp = self.app  # type: ignore[assignment]
        first = self.query(FixturePanel).first()
        app.select_fixture_quietly(first.fixture)
        first.serial_input.focus()
        app.show_fault_badges()
        app.show_line_badges()

    def on_key(self, event: events.Key) -> None:
        """Characters no field took (the focus on a table, a tab, nothing): a scan. It goes to the
        selected fixture's serial field when that fixture is idle; else it is refused on screen."""
        app: OperatorApp = self.app  # type: ignore[assignment]
        if isinstance(app.focused, (Input, Select)) or event.key in ("tab", "shift+tab"):
            return
        char = event.character
        printable = bool(char) and (event.is_printable or ord(char) < 0x20) and event.key not in ("enter", "escape",
                                                                                              "backspace")
        panel = app.selected_panel()
        if printable and not self.stray.text and panel is not None and not panel.running:
            event.stop()
            event.prevent_default()
            for tabs in self.query("#tabs"):
                tabs.active = "tab-run"  # type: ignore[attr-defined]
            panel.serial_input.focus()
            panel.serial_input.start_scan(char or "")
            return
        if (printable or self.stray.text or event.key == "enter") and self.stray.feed(event):
            event.stop()
            event.prevent_default()

    def _refuse_stray(self, text: str) -> None:
        app: OperatorApp = self.app  # type: ignore[assignment]
        panel = app.selected_panel()
        why = (f"fixture {panel.fixture} is running a pack" if panel is not None and panel.running
               else "no serial field was selected")
        app.notify(f"scan '{text}' NOT taken: {why}. Select an idle fixture (F1–F4) and scan again.",
                   severity="error", timeout=15)
        if panel is not None and not panel.running:
            panel.say(f"✘ scan '{text}' not taken: {why}", "bold red")
