"""A one-line badge (delivery, reference drift): hidden while it has nothing to say."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Label


class Badge(Label):
    """Shows a ``Text`` (never markup) or hides; redrawn only when its text changes, since timers
    refresh it every few seconds and each redraw lays out the screen again."""

    def __init__(self, **kwargs) -> None:
        super().__init__("", markup=False, **kwargs)
        self._shown: tuple[str | None, str | None] = (None, None)  # (text, tooltip) on screen

    def show(self, text: Text | None, tooltip: Text | None = None) -> None:
        key = (None if text is None else text.plain, None if tooltip is None else tooltip.plain)
        if key == self._shown:
            return
        self._shown = key
        self.update(text or Text(""))
        self.tooltip = tooltip
        self.display = text is not None
