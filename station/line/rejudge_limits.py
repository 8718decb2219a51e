"""New limits for ``station rejudge``: from a limits file or from a new version of the plan.

A **limits file** (YAML) names measurements as plan variants do, ``STEP.MEASUREMENT``, where
STEP is a step id (every step with that id) or a full step path as recorded (``main/cells``;
loop indices ``[...]`` may be left out), and gives each a limit in the plan language::

    limits:
      cells.cell_v: {min: 3.25 V, max: 3.40 V}
      main/insulation/iso.r_iso: {min: 500 kOhm}

A **new plan** gives every measurement its limit as the plan would judge it now: the plan is
bound to each run's variant (variant overrides and action defaults applied) and its steps are
matched to the recorded step paths. Limits written as expressions are evaluated with the bound
plan's parameters; one that needs a value known only during a run cannot be re-judged (counted,
never guessed). Judging itself is the plan language's (``station.plan.judge``), not a copy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from drivers.base.diagnostics import InputError, Problem
from drivers.base.yamlsrc import load_file
from station.plan import model as m
from station.plan.values import is_template, limit_order_problem, literal_problem

_INDEX = re.compile(r"\[[^\]]*\]")


def _plain(path: str) -> str:
    """A recorded step path without loop indices: ``main/cells[3]/v`` -> ``main/cells/v``."""
    return _INDEX.sub("", path)


@dataclass
class NewLimits:
    """Where new limits come from and how to find the one for a recorded measurement."""

    source: str
    plan_id: str | None = None  # --plan: only runs of this product are re-judged
    by_key: dict[tuple[str, str], m.Limit] = field(default_factory=dict)  # (step, name)
    loaded_plan: Any = None
    _bound: dict[str | None, Any] = field(default_factory=dict)  # variant -> (paths, names) | str
    problems: dict[str, int] = field(default_factory=dict)

    def lookup(self, variant: str | None, path: str, name: str) -> tuple[m.Limit, Mapping[str, Any]] | None:
        """The new limit of measurement ``name`` of step ``path`` in a run of ``variant``."""
        if self.loaded_plan is None:
            plain = _plain(path)
            for step in (plain, plain.rsplit("/", 1)[-1]):
                limit = self.by_key.get((step, name))
                if limit is not None:
                    return limit, {}
            return None
        bound = self._bind(variant)
        if isinstance(bound, str):
            return None
        paths, names = bound
        node = paths.get(_plain(path))
        if node is None:
            return None
        limit = node.expect.get(name, node.spec.defaults.get(name, node.spec.defaults.get("*")))
        if isinstance(limit, dict):
            limit = m.Limit(**limit)
        return (limit, names) if limit is not None else None

    def _bind(self, variant: str | None):
        if variant not in self._bound:
            from station.plan.bind import bind_plan
            from station.plan.tree import ActionNode

            try:
                bound = bind_plan(self.loaded_plan, variant or None)
            except InputError as exc:
                self._bound[variant] = f"variant {variant!r}: {exc.problems[0].message}"
                return self._bound[variant]
            paths: dict[str, Any] = {}

            def walk(nodes, prefix):
                for node in nodes:
                    path = f"{prefix}/{node.label}"
                    if isinstance(node, ActionNode):
                        paths[path] = node
                    else:
                        walk(node.children, path)
                        walk(node.finally_, path)

            for phase in ("setup", "main", "teardown"):
                walk(getattr(bound, phase), phase)
            self._bound[variant] = (paths, dict(bound.parameters))
        return self._bound[variant]


def from_plan(path: str) -> NewLimits:
    """Limits of a new plan version; raises InputError (exit 2) for a bad plan."""
    from station.plan.loader import load_plan

    loaded = load_plan(path)
    return NewLimits(source=f"plan {path} ({loaded.plan.id} {loaded.plan.version})",
                     plan_id=loaded.plan.id, loaded_plan=loaded)


def from_file(path: str) -> NewLimits:
    """Limits of a limits file; raises InputError with FILE:LINE:COL for every problem."""
    src = load_file(path)
    if src.problems:
        raise InputError(src.problems)
    data = src.data
    problems: list[Problem] = []
    if not isinstance(data, dict) or not isinstance(data.get("limits"), dict) or not data["limits"]:
        raise InputError([src.problem((), "expected a mapping 'limits:' of STEP.MEASUREMENT: limit")])
    extra = [k for k in data if k != "limits"]
    problems += [src.problem((k,), f"unknown key {k!r} (only 'limits')", key=True) for k in extra]
    out = NewLimits(source=f"limits {Path(path)}")
    for key, raw in data["limits"].items():
        loc = ("limits", key)
        if not isinstance(key, str) or "." not in key.strip("."):
            problems.append(src.problem(loc, f"{key!r}: expected STEP.MEASUREMENT", key=True))
            continue
        step, name = key.rsplit(".", 1)
        if not isinstance(raw, dict):
            problems.append(src.problem(loc, f"{key}: expected a limit mapping (min, max, ...)"))
            continue
        try:
            limit = m.Limit(**raw)
        except ValidationError as exc:  # name the field
            for e in exc.errors():
                where = loc + tuple(str(p) for p in e.get("loc", ()))
                problems.append(src.problem(where, f"{key}: {e.get('msg')}"))
            continue
        bad = [(f, literal_problem(getattr(limit, f))) for f in ("min", "max", "nominal", "tolerance", "marginal")
               if getattr(limit, f) is not None and not is_template(getattr(limit, f))]
        bad = [(f, why) for f, why in bad if why]
        if bad:
            problems += [src.problem(loc + (f,), f"{key}.{f}: {why}") for f, why in bad]
            continue
        order = limit_order_problem(limit)
        if order:
            problems.append(src.problem(loc, f"{key}: {order}"))
            continue
        out.by_key[(_plain(step), name)] = limit
    if problems:
        raise InputError(problems)
    return out
