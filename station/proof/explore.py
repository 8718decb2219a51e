"""Mutation testing for plans: which catalogue faults does a plan meet that it does not declare?

For every catalogue fault: its defaults, then each parameter moved on its own across the span
the catalogue gives it (low, middle, high for a number — geometric middle when the span covers a
decade or more —, every choice for a string). A combination equal to a declared catch (after
defaults are filled in) is left out: the declared proof runs it already.
"""

from __future__ import annotations

import math
from typing import Any


def fmt_value(value: Any) -> str:
    """A parameter value as fault text (``1e+06`` is kept short, ``0.05`` exact)."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _spread(kind: type, span: tuple) -> list[Any]:
    if kind is str:
        return list(span)
    low, high = span
    if low > 0 and high / low >= 10:
        middle = math.sqrt(low * high)
    else:
        middle = (low + high) / 2
    values = [low, middle, high]
    if kind is int:
        values = [round(v) for v in values]
    return [kind(v) for v in dict.fromkeys(values)]


def variations(name: str) -> list[tuple[tuple[str, str], ...]]:
    """Parameter sets to inject for catalogue fault ``name``: ``()`` (the defaults) first, then
    one parameter at a time across its span, as ``((key, text), ...)``."""
    from sim.faults import CATALOGUE

    out: list[tuple[tuple[str, str], ...]] = [()]
    for key, param in CATALOGUE[name].params.items():
        if not param.span:
            continue
        for value in _spread(param.kind, param.span):
            if value != param.default:
                out.append(((key, fmt_value(value)),))
    return out


def _declared(plan, variant: str | None) -> list[tuple[str, dict[str, Any]]]:
    from sim.faults import resolve

    out = []
    for catch in plan.catches:
        if catch.variants and variant not in catch.variants:
            continue
        try:
            out.append((catch.fault, resolve(catch.fault, {k: str(v) for k, v in catch.params.items()})))
        except (KeyError, ValueError):
            continue  # the binder reports a bad catch; here it simply declares nothing
    return out


def undeclared(plan, variant: str | None) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """(fault, params) for every explored combination the plan does not declare for ``variant``."""
    from sim.faults import CATALOGUE, resolve

    declared = _declared(plan, variant)
    out = []
    for name in CATALOGUE:
        for params in variations(name):
            full = resolve(name, dict(params))
            if (name, full) not in declared:
                out.append((name, params))
    return out
