"""Modal dialogs: an operator prompt the run waits for, and the abort confirmation."""

from __future__ import annotations

import re
from typing import ClassVar

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from station.events import PromptRequested
from station.serials import unvisible
from station.ui.safe_text import data, shown
from station.ui.scan_input import ScanInput, StrayKeys


def _keys(bindings) -> set[str]:
    return {k for b in bindings for k in b.key.split(",")}


class _Dialog(ModalScreen):
    """Keys the dialog does not use (a scan typed at the wrong moment) are refused visibly, and the
    Enter that ends such a scan never presses the focused button."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.stray = StrayKeys(self, self._refuse_stray)

    def on_key(self, event: events.Key) -> None:
        if isinstance(self.app.focused, Input) or (event.key in _keys(self.BINDINGS) and not self.stray.text):
            return
        if self.stray.feed(event):
            event.stop()
            event.prevent_default()

    def _refuse_stray(self, text: str) -> None:
        self.app.notify(f"keys '{text}' NOT taken: answer the dialog first (see its buttons)", severity="error",
                        timeout=15)


class PromptDialog(_Dialog):
    """A ``PromptRequested`` as a dialog: message (OK), confirm (yes/no) or input (validated)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("y", "answer('yes')", "Yes", show=False), Binding("n", "answer('no')", "No", show=False)]

    def __init__(self, fixture: str, request: PromptRequested) -> None:
        super().__init__(classes="dialog")
        self.fixture = fixture
        self.request = request

    def compose(self) -> ComposeResult:
        req = self.request
        with Vertical(classes="dialog-box"):
            yield Label(f"{self.fixture} · operator action", classes="dialog-title", markup=False)
            yield Static(data(req.message), classes="dialog-message", markup=False)
            if req.style == "input":
                hint = f"format: {shown(req.pattern)}" if req.pattern else "type the answer, Enter"
                yield ScanInput(placeholder=hint, id="prompt-input")
                yield Label("", id="prompt-error", classes="error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                # key hints as plain text: "[y]" given as a string would be parsed as markup and vanish
                if req.style == "confirm":
                    yield Button(Text("Yes [y]"), id="yes", variant="success")
                    yield Button(Text("No [n]"), id="no", variant="error")
                elif req.style == "input":
                    yield Button(Text("OK [Enter]"), id="ok", variant="primary")
                else:
                    yield Button(Text("OK [Enter]"), id="ok", variant="primary")

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
        typed = self.query_one("#prompt-input", Input).value.strip()
        text = unvisible(typed)  # control characters a scanner sent stay what they are
        pattern = self.request.pattern
        error = self.query_one("#prompt-error", Label)
        if not text:
            error.update(Text("an answer is needed"))
            return
        if any(ord(c) < 0x20 or c == "\x7f" for c in text):
            error.update(data(f"'{typed}' holds control characters: check the scanner and scan again"))
            return
        try:
            matches = not pattern or re.fullmatch(pattern, text) is not None
        except re.error as err:  # the plan's pattern: refuse the answer rather than end the app
            error.update(data(f"the plan's answer pattern {pattern} is not valid ({err}): call the test engineer"))
            return
        if not matches:
            error.update(data(f"'{typed}' does not match {pattern}"))
            return
        self.dismiss(text)


class ConfirmAbort(_Dialog):
    """Are you sure? The run will stop and the station goes to the safe state."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("y", "decide(True)", "Abort", show=False), Binding("n,escape", "decide(False)", "Keep running", show=False)]

    def __init__(self, fixture: str, serial: str) -> None:
        super().__init__(classes="dialog")
        self.fixture = fixture
        self.serial = serial

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box abort-box"):
            yield Label(f"Abort the run on {self.fixture}?", classes="dialog-title", markup=False)
            yield Static(data(f"Pack {self.serial}: the run stops and every instrument goes to the safe state."),
                         classes="dialog-message", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(Text("Abort [y]"), id="abort-yes", variant="error")
                yield Button(Text("Keep running [n]"), id="abort-no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#abort-no").focus()

    def action_decide(self, yes: bool) -> None:
        self.dismiss(yes)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "abort-yes")
