"""Barcode-wedge input: a scan replaces what the field held, control characters stay visible,
and keys typed where no field takes them are refused on screen instead of vanishing.

A wedge types the label's characters, then Enter. After an Enter the next character starts a new
scan (the field is cleared first), so a second scan is never appended to the first. Control
characters a scanner sends (GS of a GS1 label, ESC of a mis-set scanner) are kept as their
visible symbols (``␝``, ``␛``; see ``station.serials.visible``) for the serial check to judge.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from textual import events
from textual.widgets import Input

from station.serials import visible

PASS_THROUGH = {"enter", "tab", "shift+tab", "backspace", "ctrl+h"}  # control keys with a meaning here
STRAY_IDLE_S = 1.0  # real seconds of quiet after which stray keys are reported (no Enter came)
STRAY_ENTER_S = 3.0  # an Enter this soon after a stray key ends that scan: it presses no button


class ScanInput(Input):
    """An ``Input`` for scans: each Enter ends a scan; the next key begins a fresh one."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fresh = False  # True after Enter: the next character replaces the field

    def _bound(self, key: str) -> bool:
        return any(key in b.key.split(",") for b in self.BINDINGS if hasattr(b, "key"))

    def start_scan(self, text: str) -> None:
        """Insert ``text`` (visible form) as typed, starting a new scan if the last one was ended."""
        if self.fresh:
            self.value = ""
            self.fresh = False
        self.insert_text_at_cursor(visible(text))

    async def _on_key(self, event: events.Key) -> None:
        char = event.character
        if event.key == "enter":
            self.fresh = True  # the binding submits; the scan ends here
            return
        if event.is_printable or (char and (ord(char) < 0x20 or char == "\x7f") and event.key not in PASS_THROUGH
                                  and not self._bound(event.key)):
            event.stop()
            event.prevent_default()
            self._restart_blink()
            self.start_scan(char or "")
            return
        self.fresh = False  # editing keys (arrows, backspace): the operator is correcting this scan
        await super()._on_key(event)

    def _on_paste(self, event: events.Paste) -> None:
        event.stop()
        if event.text:
            self.start_scan(event.text.splitlines()[0] if event.text.strip("\r\n") else "")


class StrayKeys:
    """Characters typed where no field takes them: held until Enter or a pause, then refused
    visibly with the text that was typed (``report(text)``), so no scan vanishes unseen."""

    def __init__(self, widget, report: Callable[[str], None]) -> None:
        self.widget = widget
        self.report = report
        self.text = ""
        self._timer = None
        self._last = -1e9  # time.monotonic() of the last stray key (real time: keys are real)

    def feed(self, event: events.Key) -> bool:
        """Take a stray key; True if it was taken (the caller stops the event)."""
        char = event.character
        if event.key == "enter" and (self.text or time.monotonic() - self._last < STRAY_ENTER_S):
            self.flush()
            self._last = -1e9
            return True  # the Enter that ends a stray scan must not press a focused button
        if not char or not (event.is_printable or ord(char) < 0x20) or event.key in PASS_THROUGH:
            return False
        if event.key == "escape" and not self.text:
            return False
        self.text += char
        self._last = time.monotonic()
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.widget.set_timer(STRAY_IDLE_S, self.flush)
        return True

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        text, self.text = self.text, ""
        if text:
            self.report(visible(text))
