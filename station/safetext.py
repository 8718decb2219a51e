"""Text from outside (serials, operator ids, instrument replies, stored records) made safe to print.

A serial is data the station did not write: a barcode, a typed string, a row in a store someone
else filled. Printed raw, a newline plus ANSI escapes in it can move the cursor, recolour the
terminal or forge a line such as ``PASS  record …`` that was never printed by the station.
``printable(text)`` shows every control character as a visible escape instead (``\\n``,
``\\x1b``, ``\\u202e``), so what reaches the terminal is exactly one line of inert characters.
"""

from __future__ import annotations

import unicodedata

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


def _unsafe(ch: str) -> bool:
    # Cc: C0/C1 controls and DEL (ESC, CSI, BEL, backspace, carriage return...);
    # Cf: format characters such as the bidi overrides U+202E/U+2066 that reorder what is shown;
    # Zl/Zp: line and paragraph separators that some terminals break lines on.
    return unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp")


def printable(value: object) -> str:
    """``str(value)`` with control, format and line-separator characters (and backslashes)
    written as visible escapes; ordinary text, accents and symbols (Ω, µ, ≥) are kept."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable() and "\\" not in text:  # the common case, in C
        return text
    return "".join(_escape(ch) if ch == "\\" or _unsafe(ch) else ch for ch in text)


def has_controls(text: str) -> bool:
    """Whether ``text`` holds any character ``printable`` would escape (other than a backslash)."""
    return not text.isprintable() and any(_unsafe(ch) for ch in text)


def markup_safe(value: object) -> str:
    """``printable`` text with rich console markup escaped too (``[red]`` shows as ``[red]``)."""
    from rich.markup import escape

    return escape(printable(value))
