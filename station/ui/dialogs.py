"""Modal dialogs: an operator prompt the run waits for, and the abort confirmation."""

from __future__ import annotations

import re

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from station.events import PromptRequested


class PromptDialog(ModalScreen[str]):
    """A ``PromptRequested`` as a dialog: message (OK), confirm (yes/no) or input (validated)."""

    BINDINGS = [Binding("y", "answer('yes')", "Yes", show=False), Binding("n", "answer('no')", "No", show=False)]

    def __init__(self, fixture: str, request: PromptRequested) -> None:
        super().__init__(classes="dialog")
        self.fixture = fixture
        self.request = request

    def compose(self) -> ComposeResult:
        req = self.request
        with Vertical(classes="dialog-box"):
            yield Label(f"{self.fixture} · operator action", classes="dialog-title")
            yield Static(req.message, classes="dialog-message")
            if req.style == "input":
                hint = f"format: {req.pattern}" if req.pattern else "type the answer, Enter"
                yield Input(placeholder=hint, id="prompt-input")
                yield Label("", id="prompt-error", classes="error")
            with Horizontal(classes="dialog-buttons"):
                if req.style == "confirm":
                    yield Button("Yes [y]", id="yes", variant="success")
                    yield Button("No [n]", id="no", variant="error")
                elif req.style == "input":
                    yield Button("OK", id="ok", variant="primary")
                else:
                    yield Button("OK [Enter]", id="ok", variant="primary")

    def on_mount(self) -> None:
        focus = "#prompt-input" if self.request.style == "input" else ("#yes" if self.request.style == "confirm" else "#ok")
        self.query_one(focus).focus()

    def action_answer(self, text: str) -> None:
        if self.request.style == "confirm":
            self.dismiss(text)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id in ("yes", "no"):
            self.dismiss(event.button.id)
        else:
            self._submit()

    @on(Input.Submitted, "#prompt-input")
    def _submitted(self) -> None:
        self._submit()

    def _submit(self) -> None:
        if self.request.style != "input":
            self.dismiss("ok")
            return
        text = self.query_one("#prompt-input", Input).value.strip()
        pattern = self.request.pattern
        if pattern and not re.fullmatch(pattern, text):
            self.query_one("#prompt-error", Label).update(f"'{text}' does not match {pattern}")
            return
        if not text:
            self.query_one("#prompt-error", Label).update("an answer is needed")
            return
        self.dismiss(text)


class ConfirmAbort(ModalScreen[bool]):
    """Are you sure? The run will stop and the station goes to the safe state."""

    BINDINGS = [Binding("y", "decide(True)", "Abort", show=False), Binding("n,escape", "decide(False)", "Keep running", show=False)]

    def __init__(self, fixture: str, serial: str) -> None:
        super().__init__(classes="dialog")
        self.fixture = fixture
        self.serial = serial

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box abort-box"):
            yield Label(f"Abort the run on {self.fixture}?", classes="dialog-title")
            yield Static(f"Pack {self.serial}: the run stops and every instrument goes to the safe state.",
                         classes="dialog-message")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Abort [y]", id="abort-yes", variant="error")
                yield Button("Keep running [n]", id="abort-no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#abort-no").focus()

    def action_decide(self, yes: bool) -> None:
        self.dismiss(yes)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "abort-yes")
