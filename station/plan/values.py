"""Plan values at bind and run time: literals with units, ``${...}`` templates, limits, judging.

The one bridge between the plan language (units.py, expr.py) and the engine: arguments become
SI floats for drivers, limits become verdicts, anything odd becomes a ``ValueProblem`` with
words a test engineer understands. Evaluation, unit conversion and rendering live in
``station.plan.evaluation`` and judging in ``station.plan.judge``; both are re-exported here.
"""

from __future__ import annotations

import re
from collections import ChainMap
from collections.abc import Mapping
from typing import Any

from station.plan import expr as ex, units as u
from station.plan.evaluation import (
    HAS_UNIT,
    ValueProblem,
    as_quantity,
    dims_for,
    evaluate,
    in_unit,
    is_template,
    jsonable,
    literal,
    render,
    si_value,
    split_quantity,
    to_si,
    unit_scale,
)
from station.plan.judge import judge
from station.plan.units import Quantity, UnitError


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
        if unit and q.dim not in dims_for(unit):
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
    if isinstance(raw, str) and HAS_UNIT.match(raw):
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


def limit_order_problem(limit) -> str | None:
    """'min > max' and similar contradictions between literal bounds."""
    lo, hi = literal(limit.min), literal(limit.max)
    if isinstance(lo, Quantity) and isinstance(hi, Quantity) and lo.dim == hi.dim and lo.value > hi.value:
        return f"min {render(lo)} is greater than max {render(hi)}"
    if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo > hi:
        return f"min {lo} is greater than max {hi}"
    return None


__all__ = [
    "HAS_UNIT", "ValueProblem", "action_args", "as_quantity", "dims_for", "evaluate", "evaluate_condition", "in_unit",
    "include_scope", "is_template", "jsonable", "judge", "limit_order_problem", "literal", "literal_problem", "render",
    "resolve_parameters", "seconds", "si_value", "split_quantity", "template_problems", "to_si", "truthy", "unit_scale",
]
