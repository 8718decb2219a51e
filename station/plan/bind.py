"""Bind a loaded plan to a variant and a station: build the node tree and check everything.

Checks (all problems collected, each at ``PATH:LINE:COL``): actions exist, the instruments they
drive are listed by the plan and present in the station, arguments are known with the right
units, limits are coherent (``min <= max``, units match the measurement), expressions parse and
name things that exist, includes resolve without cycles, variants override known names.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Any

from drivers.base import safefile
from drivers.base.diagnostics import InputError, Problem
from drivers.base.yamlsrc import Loc, Source, load_file
from station.actions.registry import REQUIRED, ActionSpec, all_actions
from station.plan import dims as d, model as m, values as v
from station.plan.bind_dims import DimChecks
from station.plan.bind_order import OrderChecks
from station.plan.loader import LoadedPlan, parse_plan
from station.plan.tree import ActionNode, BoundPlan, GroupNode, Node

BUILTIN_NAMES = {"variant", "serial", "fixture", "station"}
MAX_INCLUDE_DEPTH = 16
MAX_INCLUDES = 256  # library loads per plan: a fan-out of includes is bounded like their depth


def _did_you_mean(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Binder(DimChecks, OrderChecks):
    def __init__(self, loaded: LoadedPlan, variant: str | None, station_roles: set[str] | None,
                 offers: dict[str, dict] | None = None) -> None:
        self.offers = offers or {}  # role -> what its instrument offers (station.actions.offers)
        self.loaded = loaded
        self.plan = loaded.plan
        self.variant = variant
        self.station_roles = station_roles
        self.problems: list[Problem] = []
        self.actions = all_actions()
        self.step_ids: set[str] = set()
        self.limit_overrides: dict[str, m.Limit] = {}
        self.used_overrides: set[str] = set()
        self.libraries: dict[str, str] = {}  # included file, relative to the plan's folder -> sha256

    # -- helpers ---------------------------------------------------------------------------
    def add(self, src: Source, loc: Loc, message: str, *, key: bool = False) -> None:
        self.problems.append(src.problem(loc, message, key=key))

    def check_value(self, raw: Any, src: Source, loc: Loc, known: set[str], *, unit: str | None = None, kind: str = "any") -> None:
        """Check a literal or template argument: units parse, expressions parse and name known things."""
        if isinstance(raw, (list, dict)) and kind not in ("any", "list"):  # a scalar argument given a collection
            shown = "a list" if isinstance(raw, list) else "a mapping"
            self.add(src, loc, v.literal_problem(raw, unit=unit, kind=kind) or f"expected a single value, got {shown}")
            return
        if isinstance(raw, list):
            for i, item in enumerate(raw):
                self.check_value(item, src, loc + (i,), known)
            return
        if isinstance(raw, dict):
            for key, item in raw.items():
                self.check_value(item, src, loc + (key,), known)
            return
        if v.is_template(raw):
            for offset, message, *opened in v.template_problems(raw, known | BUILTIN_NAMES):
                line, col = src.column_in_value(loc, offset)
                if opened:  # an unclosed bracket: where it was opened, as the file counts
                    o_line, o_col = src.column_in_value(loc, opened[0])
                    message = message.replace(", got", f" (opened at line {o_line}, column {o_col}), got", 1)
                self.problems.append(Problem(src.file, line, col, message))
            return
        message = v.literal_problem(raw, unit=unit, kind=kind)
        if message:
            self.add(src, loc, message)

    # -- parameters ------------------------------------------------------------------------
    def resolve_parameters(self) -> dict[str, Any]:
        src = self.loaded.source
        raw = {name: p.value for name, p in self.plan.parameters.items()}
        if self.variant is not None:
            if self.variant not in self.plan.variants:
                self.problems.append(unknown_variant(self.loaded, self.variant))
            else:
                var = self.plan.variants[self.variant]
                for name, value in var.parameters.items():
                    if name not in raw:
                        self.add(src, ("variants", self.variant, "parameters", name),
                                 f"variant overrides unknown parameter '{name}'{_did_you_mean(name, raw)}", key=True)
                    raw[name] = value
                self.limit_overrides = dict(var.limits)
        for vname, var in self.plan.variants.items():
            for name in var.parameters:
                if name not in raw and vname != self.variant:
                    self.add(src, ("variants", vname, "parameters", name),
                             f"variant '{vname}' overrides unknown parameter '{name}'{_did_you_mean(name, raw)}", key=True)
        names = set(raw)
        for name, value in raw.items():
            loc = (("variants", self.variant, "parameters", name)
                   if self.variant and name in self.plan.variants.get(self.variant, m.Variant()).parameters
                   else ("parameters", name, "value"))
            self.check_value(value, src, loc, names - {name})
        if any(p.file == src.file for p in self.problems):
            return {}
        try:
            return v.resolve_parameters(raw, {"variant": self.variant})
        except v.ValueProblem as err:
            self.add(src, ("parameters", err.name), str(err))
            return {}

    # -- steps -----------------------------------------------------------------------------
    def collect_ids(self, steps: list, src: Source, loc: Loc, seen: dict[str, Loc], params: set[str] = frozenset()) -> None:
        for i, step in enumerate(steps):
            here = loc + (i,)
            if step.id and step.id in params:
                self.add(src, here + ("id",), f"step id '{step.id}' is also a parameter name; expressions could not tell them apart")
            if step.id:
                if step.id in seen:
                    self.add(src, here + ("id",), f"duplicate step id '{step.id}' (first at line {src.pos(seen[step.id])[0]})")
                seen[step.id] = here + ("id",)
            if isinstance(step, m.GroupStep):
                self.collect_ids(step.steps, src, here + ("steps",), seen, params)
                self.collect_ids(step.finally_, src, here + ("finally",), seen, params)

    def build(self, steps: list, src: Source, loc: Loc, known: set[str], chain: tuple[Path, ...]) -> list[Node]:
        nodes: list[Node] = []
        for i, step in enumerate(steps):
            here = loc + (i,)
            before = len(self.problems)
            if step.when:
                self.check_value("${" + step.when + "}" if "${" not in step.when else step.when, src, here + ("when",), known)
                if len(self.problems) == before:
                    self.check_condition(step.when, src, here + ("when",))
            if step.timeout is not None:
                self.check_value(step.timeout, src, here + ("timeout",), known, unit="s")
                self.check_duration(step.timeout, src, here + ("timeout",), "timeout")
            if step.retry and step.retry.delay is not None:
                self.check_value(step.retry.delay, src, here + ("retry", "delay"), known, unit="s")
                self.check_duration(step.retry.delay, src, here + ("retry", "delay"), "retry delay")
            if isinstance(step, m.ActionStep):
                node = self.build_action(step, src, here, known, i)
            elif isinstance(step, m.GroupStep):
                node = self.build_group(step, src, here, known, chain, i)
            else:
                node = self.build_include(step, src, here, known, chain, i)
            if node is not None:
                nodes.append(node)
        return nodes

    def build_action(self, step: m.ActionStep, src: Source, loc: Loc, known: set[str], index: int) -> ActionNode | None:
        spec = self.actions.get(step.action)
        if spec is None:
            self.add(src, loc + ("action",), f"unknown action '{step.action}'{_did_you_mean(step.action, self.actions)}")
            return None
        if spec.role and spec.role not in self.plan.instruments and self.plan.kind == "plan":
            self.add(src, loc + ("action",), f"action '{spec.name}' drives instrument '{spec.role}', which the plan does not list in 'instruments'")
        args = dict(step.with_)
        if "_" in args:
            if spec.positional is None:
                self.add(src, loc + ("with",), f"action '{spec.name}' takes named arguments: {', '.join(spec.args) or 'none'}")
                args.pop("_")
            else:
                args[spec.positional] = args.pop("_")
        for name, raw in args.items():
            arg = spec.args.get(name, spec.args.get("*"))
            if arg is None:
                self.add(src, loc + ("with", name), f"action '{spec.name}' has no argument '{name}'{_did_you_mean(name, spec.args)}; arguments: {', '.join(spec.args) or 'none'}", key=True)
                continue
            if arg.choices and not v.is_template(raw) and raw not in arg.choices:
                self.add(src, loc + ("with", name), f"'{name}' must be one of {list(arg.choices)}, got {raw!r}")
                continue
            before = len(self.problems)
            self.check_value(raw, src, loc + ("with", name), known, unit=arg.unit, kind=arg.kind)
            if len(self.problems) == before and name in spec.args:
                self.check_arg_dims(name, arg.unit, arg.kind, raw, src, loc + ("with", name))
        computed = self.computed_values(args) if "*" in spec.measures and spec.measures["*"] == "" else None
        if step.name and "${" in step.name:  # a title may name parameters, loop variables, results
            self.check_value(step.name, src, loc + ("name",), known)
        for name, arg in spec.args.items():
            if arg.default is REQUIRED and name not in args and name != "*":
                self.add(src, loc + ("with",) if step.with_ else loc + ("action",), f"action '{spec.name}' needs argument '{name}'")
        for group in spec.one_of_args:
            if not any(name in args for name in group):
                self.add(src, loc + ("with",) if step.with_ else loc + ("action",),
                         f"action '{spec.name}' needs one of the arguments {', '.join(repr(g) for g in group)}")
        self.check_preconditions(spec, step, args, src, loc)
        expect = dict(step.expect)
        if step.id:
            for key, limit in self.limit_overrides.items():
                sid, _, meas = key.partition(".")
                if sid == step.id:
                    expect[meas] = limit
                    self.used_overrides.add(key)
        for meas, limit in expect.items():
            before = len(self.problems)
            self.check_limit(spec, meas, limit, src, loc + ("expect", meas), known)
            if len(self.problems) == before:
                unit = spec.measures.get(meas, spec.measures.get("*", ""))
                measured = computed.get(meas) if computed is not None else None
                if computed is not None and measured is None:
                    self._defer(src, loc + ("expect", meas), f"the computed value '{meas}'")
                else:
                    self.check_limit_dims(meas, unit, measured, limit, src, loc + ("expect", meas))
        if spec.role in self.offers:
            from station.actions.offers import refusals

            for where, message in refusals(self.offers[spec.role], spec.name, args, set(expect)):
                self.add(src, loc + where, message)
        self.record_results(step.id, spec.measures, computed)
        label = step.id or f"{spec.name}@{index + 1}"
        return ActionNode(spec, step, label, args, expect, src, loc)

    def check_limit(self, spec: ActionSpec, meas: str, limit: m.Limit, src: Source, loc: Loc, known: set[str]) -> None:
        unit = spec.measures.get(meas, spec.measures.get("*"))
        if unit is None:
            self.add(src, loc, f"action '{spec.name}' does not measure '{meas}'{_did_you_mean(meas, spec.measures)}; it measures: {', '.join(spec.measures) or 'nothing'}", key=True)
            return
        for field in ("min", "max", "nominal", "tolerance", "marginal"):
            raw = getattr(limit, field)
            if raw is None:
                continue
            dim_unit = "%|" + unit if field in ("tolerance", "marginal") else unit
            self.check_value(raw, src, loc + (field,), known, unit=dim_unit if unit not in ("bool", "str", "") else None)
        if limit.tolerance is not None and limit.nominal is None:
            self.add(src, loc + ("tolerance",), "'tolerance' needs a 'nominal'")
        if limit.regex is not None:
            try:
                re.compile(limit.regex)
            except re.error as err:
                self.add(src, loc + ("regex",), f"invalid regular expression: {err}")
        message = v.limit_order_problem(limit)
        if message:
            self.add(src, loc, message)

    def build_group(self, step: m.GroupStep, src: Source, loc: Loc, known: set[str], chain, index: int) -> GroupNode:
        inner = set(known)
        for_each = None
        if step.for_each:
            var, raw = next(iter(step.for_each.items()))
            if not v.is_template(raw) and not isinstance(raw, list):
                self.add(src, loc + ("for_each", var), "for_each needs a list or a '${...}' expression")
            else:
                self.check_value(raw, src, loc + ("for_each", var), known)
            for_each = (var, raw)
            inner.add(var)
        for j, mon in enumerate(step.monitors):
            role, _, signal = mon.signal.partition(".")
            if not signal:
                self.add(src, loc + ("monitors", j, "signal"), "monitor signal must be 'instrument.signal', e.g. 'bms.cell_voltage_max'")
            elif role not in self.plan.instruments and self.plan.kind == "plan":
                self.add(src, loc + ("monitors", j, "signal"), f"monitor reads instrument '{role}', which the plan does not list in 'instruments'")
            elif role in self.offers:
                from station.actions.offers import monitor_refusal

                if message := monitor_refusal(self.offers[role], signal):
                    self.add(src, loc + ("monitors", j, "signal"), message)
            before = len(self.problems)
            for field in ("min", "max"):
                raw = getattr(mon, field)
                if raw is not None:
                    self.check_value(raw, src, loc + ("monitors", j, field), known)
            if len(self.problems) == before:
                self.check_monitor_dims(mon, src, loc + ("monitors", j))
            if mon.period is not None:
                self.check_value(mon.period, src, loc + ("monitors", j, "period"), known, unit="s")
        loop: dict[str, Any] = {}
        if for_each is not None:
            got = d.infer(for_each[1], self.scope, self.tracker)
            items = got.value if not (got.problem or got.deferred) else None
            if isinstance(items, list) and items and not d.is_unknown(items[0]):
                loop[for_each[0]] = items[0]  # every item is alike in kind: the first stands in
            else:
                loop[for_each[0]] = d.unknown(f"the loop variable '{for_each[0]}'")
        self.push(loop)
        try:
            children = self.build(step.steps, src, loc + ("steps",), inner, chain)
            final = _finally_labels(self.build(step.finally_, src, loc + ("finally",), inner, chain))
        finally:
            self.pop()
        return GroupNode(step, step.id or f"group@{index + 1}", children, final, step.parallel,
                         list(step.monitors), for_each, src=src, loc=loc)

    def build_include(self, step: m.IncludeStep, src: Source, loc: Loc, known: set[str], chain, index: int) -> GroupNode | None:
        base = Path(src.file).parent
        label = step.id or f"{Path(step.include).stem}@{index + 1}"
        root = self.loaded.path.parent
        try:  # inside the plan's folder only: no absolute paths, no '..' or links out of it
            if os.path.isabs(step.include):
                raise safefile.UnsafeFile(step.include, f"absolute include path '{step.include}' refused: "
                                                        "name libraries relative to the including file")
            path = safefile.inside(os.path.relpath(base / step.include, root), root)
        except safefile.UnsafeFile as err:
            self.add(src, loc + ("include",), err.message)
            return None
        if path in chain:
            cycle = " -> ".join(p.name for p in chain + (path,))
            self.add(src, loc + ("include",), f"include cycle: {cycle}")
            return None
        if len(chain) > MAX_INCLUDE_DEPTH:
            self.add(src, loc + ("include",), f"includes nested deeper than {MAX_INCLUDE_DEPTH}")
            return None
        self.include_count = getattr(self, "include_count", 0) + 1
        if self.include_count > MAX_INCLUDES:
            if self.include_count == MAX_INCLUDES + 1:
                self.add(src, loc + ("include",), f"more than {MAX_INCLUDES} includes in one plan")
            return None
        if not path.exists():
            self.add(src, loc + ("include",), f"included file not found: {step.include} (looked in {base})")
            return None
        try:
            safefile.check_readable(path)  # a FIFO, device or giant file: refused at the include
        except safefile.UnsafeFile as err:
            self.add(src, loc + ("include",), err.message.replace(f"'{path}'", f"'{step.include}'"))
            return None
        lib_src = load_file(path, display=os.path.normpath(os.path.join(os.path.dirname(src.file), step.include)))
        if not lib_src.problems:
            name = Path(os.path.relpath(path, self.loaded.path.resolve().parent)).as_posix()
            self.libraries.setdefault(name, lib_src.sha256)  # for BoundPlan.release_sha256
        lib = parse_plan(lib_src)
        if lib is None:
            self.problems.extend(lib_src.problems)
            return None
        if lib.kind != "library":
            self.add(src, loc + ("include",), f"{step.include} is a plan (kind: plan); only 'kind: library' files can be included")
        params = {name: p.value for name, p in lib.parameters.items()}
        for name, raw in step.with_.items():
            if name not in params:
                self.add(src, loc + ("with", name), f"{step.include} has no parameter '{name}'{_did_you_mean(name, params)}", key=True)
            else:
                self.check_value(raw, src, loc + ("with", name), known)
        for name in lib.parameters:
            self.check_value(params[name], lib_src, ("parameters", name, "value"), set(params) - {name})
        self.collect_ids(lib.setup + lib.main + lib.teardown, lib_src, ("main",), {})
        lib_known = set(params) | self.step_ids
        for sid_list in (lib.setup, lib.main, lib.teardown):
            self._gather_ids(sid_list)
        lib_known |= self.step_ids
        self.push(self._library_scope(params, step.with_))
        try:
            children = (self.build(lib.setup, lib_src, ("setup",), lib_known, chain + (path,))
                        + self.build(lib.main, lib_src, ("main",), lib_known, chain + (path,)))
            final = _finally_labels(self.build(lib.teardown, lib_src, ("teardown",), lib_known, chain + (path,)))
        finally:
            self.pop()
        return GroupNode(step, label, children, final, include_args=dict(step.with_),
                         include_defaults=params, src=src, loc=loc)

    def _library_scope(self, defaults: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
        """A library's parameters for inference: the caller's arguments, then its defaults."""
        values: dict[str, Any] = {}
        for name, raw in args.items():
            if name in defaults:
                got = d.infer(raw, self.scope, self.tracker)
                values[name] = (got.value if got.exact else d.Placeholder(got.value)) if not (
                    got.problem or got.deferred) else d.unknown(f"library parameter '{name}'")
        inner = self.scope.new_child(values)
        for name, raw in defaults.items():
            if name not in values:
                got = d.infer(raw, inner, self.tracker)
                values[name] = got.value if got.exact and not got.problem else d.unknown(f"library parameter '{name}'")
        return values

    def check_catches(self, src: Source) -> None:
        """Declared catches name real steps, catalogue faults with valid parameters, known variants."""
        if not self.plan.catches and not self.plan.uncaught:
            return
        from sim.faults import CATALOGUE, check_fault

        for i, catch in enumerate(self.plan.catches):
            if catch.step not in self.step_ids:
                self.add(src, ("catches", i, "step"), f"no step with id '{catch.step}'{_did_you_mean(catch.step, self.step_ids)}")
            problem = check_fault(catch.fault, {k: str(v) for k, v in catch.params.items()})
            if problem:
                self.add(src, ("catches", i, "fault" if catch.fault not in CATALOGUE else "params"), problem)
            for variant in catch.variants or []:
                if variant not in self.plan.variants:
                    self.add(src, ("catches", i, "variants"), f"unknown variant '{variant}'")
        for i, item in enumerate(self.plan.uncaught):
            if item.fault not in CATALOGUE:
                self.add(src, ("uncaught", i, "fault"), f"unknown fault '{item.fault}'{_did_you_mean(item.fault, CATALOGUE)}")

    def _gather_ids(self, steps: list) -> None:
        for step in steps:
            if step.id:
                self.step_ids.add(step.id)
            if isinstance(step, m.GroupStep):
                self._gather_ids(step.steps)
                self._gather_ids(step.finally_)

    # -- whole plan ------------------------------------------------------------------------
    def bind(self) -> BoundPlan:
        src = self.loaded.source
        plan = self.plan
        if plan.kind != "plan":  # its names are its includer's: binding it alone says only this
            self.add(src, ("kind",), "this file is a library: include it from a plan, or run a plan")
            raise InputError(self.problems)
        if self.station_roles is not None:
            for i, role in enumerate(plan.instruments):
                if role not in self.station_roles:
                    self.add(src, ("instruments", i), f"the station has no instrument '{role}'{_did_you_mean(role, self.station_roles)}; it has: {', '.join(sorted(self.station_roles)) or 'none'}")
        before = len(self.problems)
        parameters = self.resolve_parameters()
        names = set(plan.parameters) | BUILTIN_NAMES
        self.collect_ids(plan.setup, src, ("setup",), seen := {}, names)
        self.collect_ids(plan.main, src, ("main",), seen, names)
        self.collect_ids(plan.teardown, src, ("teardown",), seen, names)
        self._gather_ids(plan.setup + plan.main + plan.teardown)
        known = set(plan.parameters) | self.step_ids
        self.init_dims(parameters if len(self.problems) == before else None, plan.parameters, self.step_ids)
        chain = (self.loaded.path.resolve(),)
        setup = self.build(plan.setup, src, ("setup",), known, chain)
        main = self.build(plan.main, src, ("main",), known, chain)
        teardown = self.build(plan.teardown, src, ("teardown",), known, chain)
        for key in self.limit_overrides:
            if key not in self.used_overrides:
                self.add(src, ("variants", self.variant, "limits", key),
                         f"limit override '{key}' matches no step measurement ('step_id.measurement')", key=True)
        self.check_catches(src)
        if self.problems:
            raise InputError(self.problems)
        bound = BoundPlan(plan, str(self.loaded.path), self.loaded.sha256, self.variant, parameters,
                          setup, main, teardown, list(plan.instruments), dict(self.libraries))
        bound.deferred = sorted(set(self.deferred))
        return bound


def _finally_labels(nodes: list[Node]) -> list[Node]:
    """Unnamed finally steps get their own labels so paths never collide with the body's."""
    for node in nodes:
        if node.id is None:
            node.label = f"finally.{node.label}"
    return nodes


def unknown_variant(loaded: LoadedPlan, variant: str) -> Problem:
    """``variant`` is none of the plan's: located at the plan's ``variants:``."""
    options = ", ".join(loaded.plan.variants) or "none defined"
    return loaded.source.problem(("variants",), f"unknown variant '{variant}'; variants: {options}")


def bind_plan(loaded: LoadedPlan, variant: str | None = None, station_roles: set[str] | None = None,
              offers: dict[str, dict] | None = None) -> BoundPlan:
    """Bind ``loaded`` to ``variant`` (default: the first variant, if any) and check it; ``offers``
    (role -> what the station's instrument offers) refuses steps the instrument cannot do."""
    if variant is None and loaded.plan.variants:
        variant = next(iter(loaded.plan.variants))
    return Binder(loaded, variant, station_roles, offers).bind()
