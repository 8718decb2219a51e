"""The verdict as an operator sees it from three metres (no Textual here).

``glyphs(word)`` draws PASS / FAIL / ERROR / ABORTED in 5-row block letters (35 columns at most,
so two fixture columns fit an 80-column terminal); ``plain_words`` says what a failed measurement
was and what it had to be; ``disposition`` looks up where a failed pack goes in the product
catalogue (``dispositions:`` step id or path prefix → words, ``default`` for the rest).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from station.results.record import format_quantity

_FONT = {
    "A": (" ██ ", "█  █", "████", "█  █", "█  █"),
    "B": ("███ ", "█  █", "███ ", "█  █", "███ "),
    "D": ("███ ", "█  █", "█  █", "█  █", "███ "),
    "E": ("████", "█   ", "███ ", "█   ", "████"),
    "F": ("████", "█   ", "███ ", "█   ", "█   "),
    "I": ("███", " █ ", " █ ", " █ ", "███"),
    "L": ("█   ", "█   ", "█   ", "█   ", "████"),
    "O": (" ██ ", "█  █", "█  █", "█  █", " ██ "),
    "P": ("███ ", "█  █", "███ ", "█   ", "█   "),
    "R": ("███ ", "█  █", "███ ", "█ █ ", "█  █"),
    "S": (" ███", "█   ", " ██ ", "   █", "███ "),
    "T": ("█████", "  █  ", "  █  ", "  █  ", "  █  "),
}
GLYPH_ROWS = 5
DEFAULT_DISPOSITION = "put the pack in the reject area and call the test engineer"
OTHER_ADVICE = {
    "ERROR": "the station could not finish the test: leave the pack, call the test engineer",
    "ABORTED": "the run was stopped: retest the pack when the cause is cleared",
}


def glyph_width(word: str) -> int:
    return sum(len(_FONT[c][0]) + 1 for c in word) - 1 if word else 0


def glyphs(word: str) -> list[str] | None:
    """``word`` in block letters, one string per row; None if a letter has no glyph."""
    if not word or any(c not in _FONT for c in word):
        return None
    return [" ".join(_FONT[c][row] for c in word) for row in range(GLYPH_ROWS)]


def _q(value: Any, unit: str) -> str:
    return format_quantity(value, unit)


def limits_words(limits: Mapping[str, Any], unit: str) -> str:
    """``{"min": 2e7}`` in ohm → ``at least 20 MΩ`` (empty when there are no limits)."""
    lo, hi = limits.get("min"), limits.get("max")
    lo = None if isinstance(lo, float) and math.isinf(lo) else lo
    hi = None if isinstance(hi, float) and math.isinf(hi) else hi
    if "equals" in limits:
        return _q(limits["equals"], unit)
    if lo is not None and hi is not None:
        return f"between {_q(lo, unit)} and {_q(hi, unit)}"
    if lo is not None:
        return f"at least {_q(lo, unit)}"
    if hi is not None:
        return f"at most {_q(hi, unit)}"
    return ", ".join(f"{k} {v}" for k, v in limits.items() if k != "unit")


def plain_words(step: str, name: str, value: Any, unit: str, limits: Mapping[str, Any]) -> str:
    """``iso_plus resistance was 2 MΩ; it must be at least 20 MΩ``."""
    need = limits_words(limits, unit)
    return f"{step} {name} was {_q(value, unit)}; " + (f"it must be {need}" if need else "it was judged a failure")


def disposition(dispositions: Mapping[str, str], failed_paths: list[str]) -> str:
    """Where a FAIL pack goes: the entry for the first failed step (its id, else the longest path
    prefix or group name matching it), else ``default``, else the station's own default."""
    for path in failed_paths:
        parts = path.split("/")
        if parts[-1] in dispositions:
            return dispositions[parts[-1]]
        best = None
        for key in dispositions:
            k = key.strip("/")
            if not k or k == "default":
                continue
            names = path == k or path.startswith(k + "/") or f"main/{k}" == path or path.startswith(f"main/{k}/") or k in parts
            if names and (best is None or len(k) > len(best.strip("/"))):
                best = key
        if best is not None:
            return dispositions[best]
    return dispositions.get("default", DEFAULT_DISPOSITION)
