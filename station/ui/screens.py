"""The log-in screen and the main screen (fixtures, station, history, training tabs)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, Select, Static, TabbedContent, TabPane

from station.ui.fixture_panel import FixturePanel
from station.ui.panels import HistoryPanel, StationPanel
from station.ui.policy import Overrides, Refusal, login, may_choose_plan, plan_files

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
            yield Label(f"{app.config.config.station_id} · {'SIMULATED station' if app.sim else 'station'}",
                        classes="dialog-title")
            yield Label("Operator id:")
            yield Input(placeholder="scan badge or type id, Enter", id="login-id")
            yield Label("PIN:", id="login-pin-label")
            yield Input(placeholder="PIN, Enter", id="login-pin", password=True)
            yield Label("", id="login-error", classes="error")

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
        self.query_one("#login-error", Label).update(Text(text))  # Text: an id is never markup

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
    """Engineers: any plan and variant; with --sim, faults injected into the simulated pack."""

    def compose(self) -> ComposeResult:
        app: OperatorApp = self.app  # type: ignore[assignment]
        options = [(p.name, str(p)) for p in plan_files(app.config)]
        yield Label("Plan (blank: from the product catalogue)")
        yield Select(options, id="train-plan", prompt="from catalogue", compact=True)
        yield Label("Variant (blank: from the catalogue)")
        yield Input(id="train-variant", placeholder="e.g. car-400", compact=True)
        if app.sim:
            from sim.faults import CATALOGUE

            yield Label("Faults, space-separated NAME[:k=v,...]")
            yield Input(id="train-faults", placeholder="e.g. isolation_low", compact=True)
            yield Static(Text("catalogue: " + " ".join(CATALOGUE), style="dim"), id="fault-names")
        else:
            yield Label("Faults need the simulator (station ui --sim)", classes="error")

    def overrides(self) -> Overrides:
        plan = self.query_one("#train-plan", Select).value
        variant = self.query_one("#train-variant", Input).value.strip()
        faults = self.query("#train-faults")
        text = faults.first(Input).value if faults else ""
        return Overrides(plan=plan if isinstance(plan, str) else None, variant=variant or None,
                         faults=tuple(text.split()))


class MainScreen(Screen):
    def compose(self) -> ComposeResult:
        app: OperatorApp = self.app  # type: ignore[assignment]
        op = app.operator
        mode = "SIM" + (" · TRAINING" if may_choose_plan(op) else "") if app.sim else "HW"
        yield Label(f" {app.config.config.station_id} · {op.name or op.id} ({op.role}) · {mode}", id="topbar")
        with TabbedContent(id="tabs"):
            with TabPane("F1 Run", id="tab-run"):
                with Horizontal(id="fixtures"):
                    for fid, fx in app.config.config.fixtures.items():
                        yield FixturePanel(fid, fx.sim_preset)
            with TabPane("F2 Station", id="tab-station"):
                yield StationPanel(id="station-panel")
            with TabPane("F3 History", id="tab-history"):
                yield HistoryPanel(id="history-panel")
            if may_choose_plan(op):
                with TabPane("F4 Training", id="tab-training"):
                    yield TrainingPanel(id="training-panel")
        yield Footer()

    def on_mount(self) -> None:
        self.query(FixturePanel).first().serial_input.focus()
