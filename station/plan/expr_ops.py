"""The bounded operations the evaluator applies: arithmetic, comparison, truth, size checks.

Each check runs before the costly step (a huge power or repetition is refused, not computed),
and every failure is an ``ExprError`` at the operator's position. Dimensioned quantities
compare only with the same dimension, never with a bare number.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any

from station.plan import units as u
from station.plan.expr_errors import MAX_FLOAT_EXP10, MAX_INT_BITS, MAX_SEQUENCE, ExprError, err
from station.plan.units import Quantity, UnitError


def type_name(x: Any) -> str:
    """What a value is called in messages: its unit, ``number``, ``string``, ``list``, ..."""
    if isinstance(x, Quantity):
        return u.unit_of(x) or "number"
    return {bool: "bool", int: "number", float: "number", str: "string", list: "list",
            tuple: "list", type(None): "null"}.get(type(x), type(x).__name__)


def bounded(x: Any, pos: int) -> Any:
    """Refuse results too large to keep: huge integers, long strings/lists, complex numbers."""
    if isinstance(x, int) and not isinstance(x, bool) and x.bit_length() > MAX_INT_BITS:
        raise err(f"integer result too large (more than {MAX_INT_BITS} bits)", pos)
    if (isinstance(x, str) and len(x) > MAX_SEQUENCE) or (isinstance(x, (list, tuple)) and too_big(x)):
        raise err(f"result too long (more than {MAX_SEQUENCE} items)", pos)
    if isinstance(x, complex):
        raise err("complex result (negative number to a fractional power)", pos)
    return x


def too_big(x: list | tuple) -> bool:
    """Whether a list holds more than MAX_SEQUENCE items counting nested ones and characters.

    Counted as if written out, so ``[[0] * 1000] * 1000`` is a million: repetition shares the
    inner list, but comparing or printing it would not.
    """
    budget, stack = MAX_SEQUENCE, [x]
    while stack:
        item = stack.pop()
        budget -= len(item) if isinstance(item, (str, list, tuple)) else 1
        if budget < 0:
            return True
        if isinstance(item, (list, tuple)):
            stack.extend(item)
    return False


def short(x: Any) -> str:
    """A value for a message, at most 40 characters."""
    text = repr(x) if isinstance(x, (str, int, float)) else type_name(x)
    return text if len(text) <= 40 else text[:37] + "..."


def as_number(x: Any) -> float | int | None:
    """The plain number of a bare number or dimensionless quantity, else None."""
    if isinstance(x, Quantity):
        return x.value if x.dim == u.DIMENSIONLESS else None
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return x
    return None


def _power(a: Any, b: Any, pos: int) -> Any:
    """``a ** b`` after checking that the result stays within bounds (cost is never paid first)."""
    base, exp = as_number(a), as_number(b)
    if isinstance(a, Quantity) and base is None:
        return a ** b
    if base is None or exp is None:
        raise TypeError
    if base not in (0, 1, -1):
        magnitude = exp * math.log10(abs(base))
        if isinstance(base, int) and isinstance(exp, int) and exp > 0:
            if magnitude > MAX_INT_BITS * math.log10(2):
                raise err(f"power result too large (more than {MAX_INT_BITS} bits)", pos)
        elif magnitude > MAX_FLOAT_EXP10:
            raise err(f"power result too large (above 1e{MAX_FLOAT_EXP10})", pos)
    return a ** b


def _repeat_check(a: Any, b: Any, pos: int) -> None:
    """Refuse ``seq * n`` that would exceed MAX_SEQUENCE, before building it."""
    for seq, n in ((a, b), (b, a)):
        if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * max(n, 0) > MAX_SEQUENCE:
            raise err(f"result too long (more than {MAX_SEQUENCE} items)", pos)


_ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod,
}
_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
            "==": operator.eq, "!=": operator.ne}


def arith(op: str, a: Any, b: Any, pos: int) -> Any:
    """``a op b`` for ``+ - * / // % **``, bounded; any failure is an ``ExprError`` at ``pos``."""
    try:
        if op == "**":
            return bounded(_power(a, b, pos), pos)
        if op == "*":
            _repeat_check(a, b, pos)
        if op == "%" and isinstance(a, str):
            raise TypeError
        if op == "+" and isinstance(a, (str, list)) and isinstance(b, type(a)) and len(a) + len(b) > MAX_SEQUENCE:
            raise err(f"result too long (more than {MAX_SEQUENCE} items)", pos)
        return bounded(_ARITH[op](a, b), pos)
    except ExprError:
        raise
    except UnitError as e:
        raise err(str(e), pos) from e
    except ZeroDivisionError as e:
        raise err("division by zero", pos) from e
    except OverflowError as e:
        raise err(f"numeric overflow in '{op}'", pos) from e
    except (TypeError, ValueError) as e:
        raise err(f"cannot apply '{op}' to {type_name(a)} and {type_name(b)}", pos) from e


def compare(op: str, a: Any, b: Any, pos: int) -> bool:
    """``a op b`` for comparisons and ``in`` / ``not in``; quantities only with the same dimension."""
    try:
        if op in ("in", "not in"):
            if isinstance(b, str) and not isinstance(a, str):
                raise TypeError
            found = a in b
            return found if op == "in" else not found
        qa, qb = isinstance(a, Quantity), isinstance(b, Quantity)
        if (qa or qb) and not (qa and qb) and as_number(a if qb else b) is not None:
            q, other = (a, b) if qa else (b, a)
            if q.dim != u.DIMENSIONLESS:
                raise UnitError(f"cannot compare {u.unit_of(q)} with a bare number {other!r} (add a unit)")
        elif qa and qb and a.dim != b.dim:
            raise UnitError(f"cannot compare {type_name(a)} and {type_name(b)}")
        return bool(_COMPARE[op](a, b))
    except UnitError as e:
        raise err(str(e), pos) from e
    except (TypeError, ValueError) as e:
        raise err(f"cannot apply '{op}' to {type_name(a)} and {type_name(b)}", pos) from e


def truth(x: Any, pos: int) -> bool:
    """``bool(x)`` as a condition; a failing ``__bool__`` is an ``ExprError`` at ``pos``."""
    try:
        return bool(x)
    except Exception as e:  # an object from the station whose __bool__ fails
        raise err(f"cannot use {type_name(x)} as a condition", pos) from e
