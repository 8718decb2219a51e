"""The tokenizer of the expression language, with the rules for a unit after a number.

A unit binds only right after a number literal and only if it is a known unit; a composite
unit has no spaces (``100 ohm/V`` is one literal, ``x / V`` divides by the name ``V``). After a
number, ``%`` is percent unless an operand follows: ``10 % 3`` is 1, ``soc <= 30 %`` is 0.3.
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

from station.plan import units as u
from station.plan.expr_errors import err
from station.plan.units import Quantity, UnitError


class Tok(NamedTuple):
    """One token of an expression."""

    kind: str  # "value" (number, quantity, string, constant), "name", "op", "end"
    value: Any
    pos: int  # 0-based offset in the expression


_SPACE = re.compile(r"[ \t\r\n]*")
_NUMBER = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_UNIT_ATOM = re.compile("[A-Za-z\u00b5\u03bc\u03a9\u2126\u00b0][A-Za-z0-9\u00b5\u03bc\u03a9\u2126\u00b0]*(?:\\^-?[0-9]{1,2})?")
_OPS = ("**", "//", "<=", ">=", "==", "!=", "+", "-", "*", "/", "%", "<", ">", "(", ")", "[", "]", ",", ".")
_KEYWORDS = {"and", "or", "not", "if", "else", "in"}
_CONSTANTS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}


def _operand_follows(text: str, i: int) -> bool:
    """Whether an operand starts at ``i`` (after spaces): decides '%' modulo vs percent."""
    i = _SPACE.match(text, i).end()
    if i >= len(text):
        return False
    if text[i] in "0123456789.([\"'":
        return True
    m = _NAME.match(text, i)
    return bool(m) and m.group() not in _KEYWORDS


def _unit_after(text: str, i: int) -> tuple[str, int] | None:
    """The unit written at ``i`` right after a number, as (unit text, end), or None."""
    if text.startswith("%", i):
        return None if _operand_follows(text, i + 1) else ("%", i + 1)
    m = _UNIT_ATOM.match(text, i)
    if not m or m.group() in _KEYWORDS or m.group() in _CONSTANTS:
        return None
    try:
        u.parse_unit(m.group())
    except UnitError as e:
        raise err(f"{e} after a number", i) from None
    end = m.end()
    while end < len(text) and text[end] in "*/":
        nxt = _UNIT_ATOM.match(text, end + 1)
        if not nxt or (nxt.group() not in u.UNITS and nxt.group().split("^")[0] not in u.UNITS):
            break
        end = nxt.end()
    return text[i:end], end


def _string(text: str, i: int) -> tuple[str, int]:
    """The string literal whose quote is at ``i``, as (value, end)."""
    quote, out, j = text[i], [], i + 1
    while j < len(text):
        c = text[j]
        if c == quote:
            return "".join(out), j + 1
        if c == "\\":
            esc = text[j + 1 : j + 2]
            if esc not in _ESCAPES:
                raise err(f"unknown escape '\\{esc}' in string", j)
            out.append(_ESCAPES[esc])
            j += 2
            continue
        out.append(c)
        j += 1
    raise err("unterminated string", i)


def tokenize(text: str) -> list[Tok]:
    """Split an expression into tokens; a number with its unit is one quantity token."""
    toks: list[Tok] = []
    i, n = 0, len(text)
    while True:
        i = _SPACE.match(text, i).end()
        if i >= n:
            toks.append(Tok("end", None, n))
            return toks
        c = text[i]
        if m := _NUMBER.match(text, i):
            digits = m.group()
            if len(digits) > 40:
                raise err("number literal too long", i)
            value: Any = float(digits) if any(ch in digits for ch in ".eE") else int(digits)
            if not math.isfinite(value):
                raise err("number out of range", i)
            j = _SPACE.match(text, m.end()).end()
            unit = _unit_after(text, j) if j < n else None
            if unit:
                try:
                    scale, dim = u.parse_unit(unit[0])
                except UnitError as e:
                    raise err(f"{e} after a number", j) from None
                hint = unit[0] if unit[0] in ("%", "ppm") else None
                value, j = Quantity(value * scale, dim, hint), unit[1]
            else:
                j = m.end()
            toks.append(Tok("value", value, i))
            i = j
        elif m := _NAME.match(text, i):
            word = m.group()
            if word in _CONSTANTS:
                toks.append(Tok("value", _CONSTANTS[word], i))
            else:
                toks.append(Tok("op" if word in _KEYWORDS else "name", word, i))
            i = m.end()
        elif c in "'\"":
            value, j = _string(text, i)
            toks.append(Tok("value", value, i))
            i = j
        else:
            op = next((o for o in _OPS if text.startswith(o, i)), None)
            if op is None:
                hint = " (use '==' to compare)" if c == "=" else ""
                raise err(f"unexpected character {c!r}{hint}", i)
            toks.append(Tok("op", op, i))
            i += len(op)
