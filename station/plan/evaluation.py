"""Plan values as numbers: literals and ``${...}`` templates evaluated, SI to and from a unit, text.

The lower half of ``station.plan.values`` (which re-exports all of it): what judging needs
(``station.plan.judge``) without needing the rest of the plan's value handling.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from station.plan import expr as ex, units as u
from station.plan.units import Quantity, UnitError

HAS_UNIT = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*[A-Za-z%\u00b0\u00b5\u03a9]")


class ValueProblem(ValueError):
    """A value that cannot be used: bad unit, wrong dimension, failing expression."""

    def __init__(self, message: str, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


def is_template(raw: Any) -> bool:
    return isinstance(raw, str) and "${" in raw


_LITERALS: dict[str, Any] = {}


def literal(raw: Any) -> Any:
    """A YAML literal as a value: ``"800 V"`` becomes a Quantity; other strings stay strings."""
    if isinstance(raw, str):
        # Every step evaluates its literal arguments again: the answer for a text is kept
        # (Quantities are immutable), 5,800 -> 1,600 instructions per "1 V" (callgrind).
        value = _LITERALS.get(raw)
        if value is None:
            value = raw
            if HAS_UNIT.match(raw):
                try:
                    value = u.parse_quantity(raw)
                except UnitError:
                    pass
            if len(_LITERALS) > 10_000:  # plans come and go in a long-running station
                _LITERALS.clear()
            _LITERALS[raw] = value
        return value
    if isinstance(raw, list):
        return [literal(x) for x in raw]
    return raw


def evaluate(raw: Any, names: Mapping[str, Any]) -> Any:
    """Evaluate templates and literals recursively."""
    if isinstance(raw, str):
        if "${" in raw:
            try:
                return ex.interpolate(raw, names)
            except (ex.ExprError, UnitError, TypeError, ValueError, ZeroDivisionError, OverflowError) as err:
                raise ValueProblem(f"{raw}: {err}") from None
        return literal(raw)
    if isinstance(raw, list):
        return [evaluate(x, names) for x in raw]
    if isinstance(raw, dict):
        return {k: evaluate(x, names) for k, x in raw.items()}
    return raw


def dims_for(unit: str) -> list[u.Dim]:
    dims = []
    for part in unit.split("|"):
        dims.append(u.parse_unit(part)[1] if part not in ("", "bool", "str") else u.DIMENSIONLESS)
    return dims


def si_value(value: Any, unit: str | None = None, what: str = "value") -> float:
    """A Quantity (checked against ``unit``) or plain number as an SI float."""
    if isinstance(value, Quantity):
        if unit and unit not in ("", "bool", "str") and value.dim not in dims_for(unit):
            raise ValueProblem(f"{what}: {render(value)} is {u.dimension_name(value)}, expected {unit}")
        return value.value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueProblem(f"{what}: expected a number with a unit, got {render(value)}")


_SCALES: dict[str, float] = {}


def unit_scale(unit: str) -> float:
    """SI per one ``unit`` (3600 for Ah, 0.01 for %); 1 for bare numbers, text and unknown units."""
    scale = _SCALES.get(unit)
    if scale is None:
        scale = 1.0
        if unit not in ("", "bool", "str"):
            try:
                scale = u.parse_unit(unit)[0]
            except UnitError:
                pass
        _SCALES[unit] = scale
    return scale


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def in_unit(si: Any, unit: str) -> Any:
    """An SI number expressed in ``unit`` (C -> Ah, fraction -> %), to 12 significant digits so
    0.3 reads 30 %, not 29.999999999999996 %; anything else unchanged."""
    scale = unit_scale(unit)
    if scale == 1.0 or not _is_number(si) or not math.isfinite(si):
        return si
    return float(f"{si / scale:.12g}")


def to_si(value: Any, unit: str) -> Any:
    """A number in ``unit`` as SI (the inverse of ``in_unit``)."""
    scale = unit_scale(unit)
    return value * scale if scale != 1.0 and _is_number(value) else value


def split_quantity(value: Any, unit: str) -> tuple[Any, str]:
    """A measured value as (number in the unit it is recorded in, that unit).

    Actions return SI floats (coulombs for a charge declared in Ah, a fraction for a SOC in %);
    the record states each value in the unit it names, so it is converted here: -151006 C is
    recorded as -41.946 Ah, 0.3 as 30 %. A computed Quantity takes its canonical unit.
    """
    if isinstance(value, Quantity):
        value, unit = value.value, u.unit_of(value)
    return in_unit(value, unit), unit


def as_quantity(value: Any, unit: str) -> Any:
    """A recorded value (in ``unit``, see ``split_quantity``) as a Quantity for expressions."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or unit in ("", "bool", "str"):
        return value
    try:
        scale, dim = u.parse_unit(unit)
    except UnitError:
        return value
    return Quantity(value * scale, dim, unit if unit in ("%", "ppm") else None)


def render(value: Any, unit: str | None = None) -> str:
    """Human text for a value: quantities with their unit, floats in ``unit`` if given."""
    if isinstance(value, Quantity):
        return u.format_quantity(value)
    if isinstance(value, float) and unit and unit not in ("", "bool", "str"):
        try:
            _scale, dim = u.parse_unit(unit)
            return u.format_quantity(Quantity(value, dim, unit if unit in ("%", "ppm") else None))
        except UnitError:
            return f"{value:g} {unit}"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        return "[" + ", ".join(render(x) for x in value) + "]"
    return str(value)


def jsonable(value: Any) -> Any:
    """JSON-able form: quantities as their text ("800 V"), containers recursively."""
    if isinstance(value, Quantity):
        return u.format_quantity(value)
    if isinstance(value, dict):
        return {str(k): jsonable(x) for k, x in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(x) for x in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
