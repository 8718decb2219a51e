"""Plan values at bind and run time: literals with units, ``${...}`` templates, limits, judging.

The one bridge between the plan language (units.py, expr.py) and the engine: arguments become
SI floats for drivers, limits become verdicts, anything odd becomes a ``ValueProblem`` with
words a test engineer understands.
"""

from __future__ import annotations

import math
import re
from collections import ChainMap
from collections.abc import Mapping
from typing import Any

from station.plan import expr as ex, units as u
from station.plan.units import Quantity, UnitError

_HAS_UNIT = re.compile(r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*[A-Za-z%\u00b0\u00b5\u03a9]")


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
            if _HAS_UNIT.match(raw):
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


def evaluate_condition(text: str, names: Mapping[str, Any]) -> Any:
    return evaluate(text if "${" in text else "${" + text + "}", names)


def truthy(value: Any) -> bool:
    return bool(value)


def template_problems(raw: str, known: set[str]) -> list[tuple[int, str]]:
    """Syntax errors and unknown names in a template, with character offsets."""
    try:
        found = ex.find_expressions(raw)
    except ex.ExprError as err:
        if err.opened is not None:  # name the bracket by its place in the text, not the expression
            message = re.sub(r" at column \d+", "", err.message, count=1)
            return [(err.offset, message, err.opened - 1)]
        return [(err.offset, err.message)]
    problems = []
    for start, _end, expression in found:
        if not expression.names():  # a constant: evaluate it now, so a bad one fails validation
            try:
                expression.evaluate({})
            except (ex.ExprError, UnitError, TypeError, ValueError, ZeroDivisionError, OverflowError) as err:
                problems.append((start, getattr(err, "message", str(err))))
            continue
        for name in sorted(expression.names() - known):
            hint = ""
            import difflib

            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            if close:
                hint = f" (did you mean '{close[0]}'?)"
            problems.append((start, f"unknown name '{name}' in expression{hint}"))
    return problems


def _dims_for(unit: str) -> list[u.Dim]:
    dims = []
    for part in unit.split("|"):
        dims.append(u.parse_unit(part)[1] if part not in ("", "bool", "str") else u.DIMENSIONLESS)
    return dims


def literal_problem(raw: Any, *, unit: str | None = None, kind: str = "any") -> str | None:
    """Why a literal argument is unusable, or None."""
    if raw is None:
        return None
    if kind == "quantity" or (unit and unit not in ("bool", "str")):
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
            return f"expected a value in {unit or 'a unit'}, got {raw!r}"
        if isinstance(raw, (int, float)):
            if unit and unit not in ("", "%") and raw != 0:
                return f"'{raw}' needs a unit ({unit.split('|')[-1]}), e.g. '{raw} {unit.split('|')[-1]}'"
            return None
        try:
            q = u.parse_quantity(raw)
        except UnitError as err:
            return str(err)
        if unit and q.dim not in _dims_for(unit):
            return f"'{raw}' is {u.dimension_name(q)}, expected {unit.replace('|', ' or ')}"
        return None
    if kind == "number" and not (isinstance(raw, (int, float)) and not isinstance(raw, bool)):
        return f"expected a number, got {raw!r}"
    if kind == "int" and not (isinstance(raw, int) and not isinstance(raw, bool)):
        return f"expected an integer, got {raw!r}"
    if kind == "bool" and not isinstance(raw, bool) and raw not in ("on", "off", "enable", "disable"):
        return f"expected true/false (or on/off), got {raw!r}"
    if kind == "list" and not isinstance(raw, list):
        return f"expected a list, got {raw!r}"
    if isinstance(raw, str) and _HAS_UNIT.match(raw):
        try:
            u.parse_quantity(raw)
        except UnitError as err:
            return str(err)
    return None


def resolve_parameters(raw: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """Evaluate parameters, which may refer to each other, in dependency order."""
    done: dict[str, Any] = {}
    pending = dict(raw)
    while pending:
        progressed = False
        for name, value in list(pending.items()):
            deps = _names_in(value)
            if deps & set(pending) - {name}:
                continue
            if name in deps:
                raise ValueProblem(f"parameter '{name}' refers to itself", name)
            try:
                done[name] = evaluate(value, ChainMap(done, base))
            except ValueProblem as err:
                raise ValueProblem(str(err), name) from None
            del pending[name]
            progressed = True
        if not progressed:
            first = next(iter(pending))
            raise ValueProblem(f"parameters refer to each other in a cycle: {', '.join(pending)}", first)
    return done


def _names_in(raw: Any) -> set[str]:
    if isinstance(raw, str) and "${" in raw:
        try:
            return set().union(*(e.names() for _s, _e, e in ex.find_expressions(raw)))
        except ex.ExprError:
            return set()
    if isinstance(raw, list):
        return set().union(set(), *(_names_in(x) for x in raw))
    return set()


def include_scope(defaults: dict[str, Any], args: dict[str, Any], names: ChainMap) -> ChainMap:
    """Names seen inside an included library: its parameters (defaults, then caller's args)."""
    values = {name: evaluate(raw, names) for name, raw in args.items()}
    lib = resolve_parameters({k: d for k, d in defaults.items() if k not in values}, {**values})
    return names.new_child({**lib, **values})


def si_value(value: Any, unit: str | None = None, what: str = "value") -> float:
    """A Quantity (checked against ``unit``) or plain number as an SI float."""
    if isinstance(value, Quantity):
        if unit and unit not in ("", "bool", "str") and value.dim not in _dims_for(unit):
            raise ValueProblem(f"{what}: {render(value)} is {u.dimension_name(value)}, expected {unit}")
        return value.value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueProblem(f"{what}: expected a number with a unit, got {render(value)}")


def seconds(raw: Any, names: Mapping[str, Any]) -> float:
    return si_value(evaluate(raw, names), "s", "duration")


def _as_bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("on", "enable", "enabled", "true", "yes"):
        return True
    if value in ("off", "disable", "disabled", "false", "no"):
        return False
    raise ValueProblem(f"{what}: expected true/false, got {render(value)}")


def action_args(spec, raw_args: dict[str, Any], names: Mapping[str, Any]) -> dict[str, Any]:
    """Evaluate an action's arguments and convert them to what the action function takes."""
    out: dict[str, Any] = {}
    for name, arg in spec.args.items():
        if name == "*":
            continue
        if name in raw_args:
            value = evaluate(raw_args[name], names)
        elif arg.required:
            raise ValueProblem(f"missing argument '{name}'")
        else:
            out[name] = arg.default
            continue
        out[name] = _convert(value, arg, name)
    if "*" in spec.args:
        for name, raw in raw_args.items():
            if name not in spec.args:
                out[name] = evaluate(raw, names)
    return out


def _convert(value: Any, arg, name: str) -> Any:
    if value is None:
        return None
    if arg.kind == "quantity":
        return si_value(value, arg.unit, name)
    if arg.kind == "number":
        return si_value(value, None, name)
    if arg.kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ValueProblem(f"{name}: expected an integer, got {render(value)}")
        return int(value)
    if arg.kind == "bool":
        return _as_bool(value, name)
    if arg.kind == "str":
        if arg.choices and value not in arg.choices:
            raise ValueProblem(f"{name}: must be one of {list(arg.choices)}, got {render(value)}")
        return value if isinstance(value, str) else render(value)
    if arg.kind == "list":
        if not isinstance(value, (list, tuple)):
            raise ValueProblem(f"{name}: expected a list, got {render(value)}")
        return list(value)
    return value


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


def limit_order_problem(limit) -> str | None:
    """'min > max' and similar contradictions between literal bounds."""
    lo, hi = literal(limit.min), literal(limit.max)
    if isinstance(lo, Quantity) and isinstance(hi, Quantity) and lo.dim == hi.dim and lo.value > hi.value:
        return f"min {render(lo)} is greater than max {render(hi)}"
    if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo > hi:
        return f"min {lo} is greater than max {hi}"
    return None


from station.plan.judge import judge  # noqa: E402  (judging lives in its own module)

__all__ = ["ValueProblem", "evaluate", "judge", "render", "jsonable", "si_value", "seconds"]
