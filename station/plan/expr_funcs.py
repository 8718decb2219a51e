"""The whitelisted functions an expression may call, and how a value reads as text."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from station.plan import units as u
from station.plan.expr_errors import MAX_SEQUENCE
from station.plan.expr_ops import as_number, too_big
from station.plan.units import Quantity


def _items(args: tuple, fname: str) -> list:
    items = list(args[0]) if len(args) == 1 and isinstance(args[0], (list, tuple)) else list(args)
    if not items:
        raise ValueError(f"{fname} of nothing")
    return items


def _sum(values) -> Any:
    items = list(values)
    if any(as_number(i) is None and not isinstance(i, Quantity) for i in items):
        raise TypeError("can only add numbers and quantities")
    total = items[0] if items else 0
    for x in items[1:]:
        total = total + x
    return total


def _mean(values) -> Any:
    items = _items((values,), "mean")
    return _sum(items) / len(items)


def _round(x, ndigits=None):
    if ndigits is not None and (not isinstance(ndigits, int) or abs(ndigits) > 30):
        raise ValueError("digits must be a whole number within +-30")
    return round(x, ndigits) if ndigits is not None or not isinstance(x, Quantity) else round(x)


def _sqrt(x):
    return u.sqrt(x) if isinstance(x, Quantity) else math.sqrt(x)


def as_text(x: Any) -> str:
    """How a value reads inside a string: quantities with units, floats short, lists bounded."""
    if isinstance(x, (list, tuple)) and too_big(x):
        raise ValueError(f"text too long (more than {MAX_SEQUENCE} items)")
    if isinstance(x, Quantity):
        return u.format_quantity(x)
    if isinstance(x, float):
        return format(x, ".6g")
    if isinstance(x, bool) or x is None:
        return {True: "true", False: "false", None: "null"}[x]
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(as_text(i) for i in x) + "]"
    return str(x)


DEFAULT_FUNCTIONS: dict[str, Callable] = {
    "abs": abs, "min": lambda *a: min(_items(a, "min")), "max": lambda *a: max(_items(a, "max")),
    "round": _round, "len": len, "sqrt": _sqrt, "sum": _sum, "mean": _mean, "any": any, "all": all,
    "float": float, "int": int, "str": as_text,
}
