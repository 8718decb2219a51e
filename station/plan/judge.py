"""Judging one measurement against its limits: pass, fail or marginal, with a readable text."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from station.plan import model as m, units as u
from station.plan.evaluation import ValueProblem, evaluate, in_unit, is_template, render, si_value, to_si, unit_scale
from station.plan.units import Quantity

_NUMERIC_LIMITS = ("min", "max", "nominal", "marginal")


def judge(value: Any, unit: str, limit: m.Limit | dict | None, names: Mapping[str, Any]) -> tuple[str, dict, str]:
    """Return ``(verdict, limits, text)``. Raises ValueProblem.

    ``value`` is a number in ``unit`` (as ``split_quantity`` records it: Ah, %) or a Quantity;
    judging is done in SI; the limits returned for the record are in ``unit``, like the value.
    """
    if isinstance(value, Quantity):
        unit = unit if unit else u.unit_of(value)
        value = value.value
    else:
        value = to_si(value, unit)
    verdict, limits, text = _judge_si(value, unit, limit, names)
    if unit_scale(unit) != 1.0 and any(k in limits for k in _NUMERIC_LIMITS):
        limits = {k: (in_unit(x, unit) if k in _NUMERIC_LIMITS else x) for k, x in limits.items()}
    return verdict, limits, text


def _judge_si(value: Any, unit: str, limit: m.Limit | dict | None, names: Mapping[str, Any]) -> tuple[str, dict, str]:
    """``judge`` with ``value`` and the limits returned in SI."""
    if isinstance(limit, dict):
        limit = m.Limit(**limit)
    shown = render(value, unit)
    if limit is None:
        return "pass", {}, shown
    fast = _literal_bounds(limit, unit)
    if fast is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, hi, limits, bounds_text = fast
        ok = not math.isnan(value) and (lo is None or value >= lo) and (hi is None or value <= hi)
        verdict = "pass" if ok else "fail"
        return verdict, dict(limits), f"{shown} {bounds_text} {verdict.upper()}"
    return _general(value, unit, limit, names, shown)


def _general(value: Any, unit: str, limit: m.Limit, names: Mapping[str, Any], shown: str) -> tuple[str, dict, str]:
    """Every kind of limit, evaluated now (expressions may name earlier results)."""
    limits: dict[str, Any] = {"unit": unit} if unit not in ("", "bool", "str") else {}
    ok = True
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)

    def bound(raw, what):
        value = evaluate(raw, names)
        if unit == "" and isinstance(value, Quantity) and value.dim != u.DIMENSIONLESS:
            # a bare (computed) value judged against '3 s': never drop the unit silently
            raise ValueProblem(f"{what}: {render(value)} is {u.dimension_name(value)}, the value is a bare number")
        return si_value(value, unit if unit not in ("bool", "str") else None, what)

    lo = bound(limit.min, "min") if limit.min is not None else None
    hi = bound(limit.max, "max") if limit.max is not None else None
    if limit.nominal is not None:
        nominal = bound(limit.nominal, "nominal")
        limits["nominal"] = nominal
        if limit.tolerance is not None:
            tol = evaluate(limit.tolerance, names)
            if isinstance(tol, Quantity) and tol.hint in ("%", "ppm"):
                span = abs(nominal) * tol.value
            else:
                span = si_value(tol, unit, "tolerance")
            lo = nominal - span if lo is None else max(lo, nominal - span)
            hi = nominal + span if hi is None else min(hi, nominal + span)
    if lo is not None or hi is not None:
        if not numeric:
            raise ValueProblem(f"numeric limits on a non-numeric value {shown!r}")
        if lo is not None:
            limits["min"] = lo
        if hi is not None:
            limits["max"] = hi
        ok = not math.isnan(value) and (lo is None or value >= lo) and (hi is None or value <= hi)
    if limit.equals is not None:
        want = evaluate(limit.equals, names)
        limits["equals"] = render(want) if isinstance(want, Quantity) else want
        ok = ok and _equal(value, want, unit)
    if limit.one_of is not None:
        options = [evaluate(x, names) for x in limit.one_of]
        limits["one_of"] = [render(x) if isinstance(x, Quantity) else x for x in options]
        ok = ok and any(_equal(value, x, unit) for x in options)
    if limit.regex is not None:
        limits["regex"] = limit.regex
        ok = ok and re.fullmatch(limit.regex, str(value)) is not None
    verdict = "pass" if ok else "fail"
    if ok and limit.marginal is not None and numeric and lo is not None and hi is not None:
        band = evaluate(limit.marginal, names)
        width = (hi - lo) * band.value if isinstance(band, Quantity) and band.hint == "%" else si_value(band, unit, "marginal")
        limits["marginal"] = width
        if value < lo + width or value > hi - width:
            verdict = "marginal"
    return verdict, limits, _text(shown, limits, unit, verdict)


_LITERAL: dict[tuple[int, str], tuple] = {}


def _literal_bounds(limit: m.Limit, unit: str):
    """(lo, hi, limits, text) for a plain min/max limit written as literals, computed once.

    Most limits are constants ('max: 100 mOhm'); resolving and rendering them on every step was
    a third of the engine's per-step overhead. Anything with ${...}, nominal, equals, ... takes
    the general path.
    """
    key = (id(limit), unit)
    hit = _LITERAL.get(key)
    if hit is not None and hit[0] is limit:
        return hit[1]
    result = None
    simple = all(getattr(limit, f) is None for f in ("nominal", "tolerance", "equals", "one_of", "regex", "marginal"))
    if simple and not is_template(limit.min) and not is_template(limit.max) and unit not in ("bool", "str"):
        _verdict, limits, text = _general(float("nan"), unit, limit, {}, "nan")
        lo, hi = limits.get("min"), limits.get("max")
        bounds_text = text[len("nan "):].rsplit(" ", 1)[0] if (lo is not None or hi is not None) else ""
        result = (lo, hi, limits, bounds_text) if bounds_text else None
    if len(_LITERAL) > 10_000:  # plans come and go in a long-running station
        _LITERAL.clear()
    _LITERAL[key] = (limit, result)
    return result


def _equal(value: Any, want: Any, unit: str) -> bool:
    if isinstance(want, Quantity):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        return math.isclose(value, want.value, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(want, bool) or isinstance(value, bool):
        return value is want or value == want
    if isinstance(want, (int, float)) and isinstance(value, (int, float)):
        return math.isclose(value, want, rel_tol=1e-9, abs_tol=1e-12)
    return str(value) == str(want)


def _text(shown: str, limits: dict, unit: str, verdict: str) -> str:
    parts = []
    if "min" in limits or "max" in limits:
        lo = render(limits["min"], unit) if "min" in limits else "-inf"
        hi = render(limits["max"], unit) if "max" in limits else "+inf"
        parts.append(f"[{lo}, {hi}]")
    if "equals" in limits:
        parts.append(f"== {limits['equals']}")
    if "one_of" in limits:
        parts.append(f"in {limits['one_of']}")
    if "regex" in limits:
        parts.append(f"~ /{limits['regex']}/")
    return f"{shown} {' '.join(parts)} {verdict.upper()}".strip()

