"""Outside text made safe to put on the terminal: never markup, never a control sequence.

Textual's ``markup=False`` and Rich ``Text`` stop markup, but an ESC or CSI character inside a
serial, an instrument reply or a stored record would still reach the terminal and could recolour,
retitle or clear it. ``shown(s)`` swaps every control character except newline and tab for a
visible stand-in (C0 → ``␛``-style symbols, C1 → ``�``); ``data(s)`` is that as a Rich ``Text``;
``sanitize(text)`` does it to a styled ``Text`` in place of its characters (spans keep their place).
"""

from __future__ import annotations

from rich.text import Text

from station.serials import SYMBOL_BASE

_TABLE = {c: chr(SYMBOL_BASE + c) for c in range(0x20) if c not in (0x09, 0x0A)}
_TABLE[0x7F] = "␡"
_TABLE.update({c: "\ufffd" for c in range(0x80, 0xA0)})


def shown(value: object) -> str:
    """``str(value)`` with control characters made visible (one character for one)."""
    return str(value).translate(_TABLE)


def data(value: object, style: str = "") -> Text:
    """Outside text as a Rich ``Text`` (no markup) with visible control characters."""
    return Text(shown(value), style=style)


def sanitize(text: Text) -> Text:
    """The same ``Text`` (styles and spans kept) with control characters made visible."""
    clean = shown(text.plain)
    if clean != text.plain:
        text = text.copy()
        text.plain = clean
    return text
