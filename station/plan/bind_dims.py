"""The binder's per-variant checks of dimensions and limits (see dims.py for the inference).

Mixed into ``Binder``: keeps a scope of what each name evaluates to for the bound variant
(parameters exactly, earlier results as placeholders of their measured dimension) and checks
every templated argument, limit and condition against it. Problems name the variant; what
only the run can decide is recorded in ``deferred`` so the validator can say so.
"""

from __future__ import annotations

from collections import ChainMap
from typing import Any

from drivers.base.diagnostics import Problem
from drivers.base.yamlsrc import Loc, Source
from station.plan import dims as d, model as m, signal_units, units as u, values as v
from station.plan.units import Quantity, UnitError

_DIMLESS_HINTS = ("%", "ppm")


class DimChecks:
    """State and checks; the host class provides ``problems``, ``variant`` and ``add``."""

    problems: list[Problem]
    variant: str | None

    def init_dims(self, parameters: dict[str, Any] | None, param_names, step_ids) -> None:
        self.tracker = d.Tracker()
        self.deferred: list[Problem] = []
        base: dict[str, Any] = {"variant": self.variant or "", "serial": d.unknown("serial"),
                                "fixture": d.unknown("fixture"), "station": d.unknown("station")}
        for sid in step_ids:
            base[sid] = d.unknown(f"the result of step '{sid}' (not measured before this point)")
        if parameters is None:
            base.update({name: d.unknown(f"parameter '{name}'") for name in param_names})
        else:
            base.update(parameters)
        self.scope = ChainMap(base)

    def _where(self) -> str:
        return f" (variant {self.variant})" if self.variant else ""

    def _at(self, src: Source, loc: Loc, raw: Any, offset: int, message: str) -> None:
        if v.is_template(raw):
            line, col = src.column_in_value(loc, offset)
            self.problems.append(Problem(src.file, line, col, message + self._where()))
        else:
            self.problems.append(src.problem(loc, message + self._where()))

    def _defer(self, src: Source, loc: Loc, what: str) -> None:
        line, col = src.pos(loc)
        self.deferred.append(Problem(src.file, line, col, f"checked at run time: depends on {what}"))

    def infer_at(self, raw: Any, src: Source, loc: Loc) -> d.Inferred:
        """Infer ``raw``; a refusal is reported at its column, a deferral recorded."""
        if raw is None:
            return d.Inferred()
        result = d.infer(raw, self.scope, self.tracker)
        if result.problem:
            self._at(src, loc, raw, result.offset, result.problem)
        elif result.deferred and v.is_template(raw):
            self._defer(src, loc, result.deferred)
        return result

    # -- arguments, conditions, durations ---------------------------------------------------
    def check_arg_dims(self, name: str, unit: str | None, kind: str, raw: Any, src: Source, loc: Loc) -> None:
        if not v.is_template(raw):
            return
        got = self.infer_at(raw, src, loc)
        if got.problem or got.deferred or not unit or unit in ("bool", "str") or kind not in ("quantity",):
            return
        dims = d.unit_dims(unit)
        value = got.value
        if isinstance(value, Quantity) and value.dim not in dims:
            self._at(src, loc, raw, 0, f"argument '{name}' is {d.describe(value, got.exact)}, expected {unit.replace('|', ' or ')}")
        elif d.dim_of(value) == u.DIMENSIONLESS and not isinstance(value, Quantity) and u.DIMENSIONLESS not in dims:
            self._at(src, loc, raw, 0, f"argument '{name}' is {d.describe(value, got.exact)}, expected a value in {unit} (add the unit)")

    def check_duration(self, raw: Any, src: Source, loc: Loc, what: str) -> None:
        if not v.is_template(raw):
            return
        got = self.infer_at(raw, src, loc)
        if got.value is not None and not (isinstance(got.value, Quantity) and got.value.dim == u.parse_unit("s")[1]):
            self._at(src, loc, raw, 0, f"{what} is {d.describe(got.value, got.exact)}, expected a duration (s)")

    def check_condition(self, text: str, src: Source, loc: Loc) -> None:
        self.infer_at(text if "${" in text else "${" + text + "}", src, loc)

    # -- limits ----------------------------------------------------------------------------
    def check_limit_dims(self, meas: str, unit: str, measured: Any, limit: m.Limit, src: Source, loc: Loc) -> None:
        """Dimensions of every bound against the measurement's, ``unit:``, and the bounds' order.

        ``unit`` is the action's declared unit; ``measured`` the inferred value for computed
        measurements (``station.calc``), which decides the dimension when given.
        """
        if unit in ("bool", "str"):
            return
        if measured is not None:
            meas_dim = d.dim_of(measured)
            if meas_dim is None:
                return
            shown = ("in " + u.unit_of(measured) if isinstance(measured, Quantity) and measured.dim != u.DIMENSIONLESS
                     else "a bare number")
        else:
            try:
                meas_dim = u.parse_unit(unit)[1] if unit else u.DIMENSIONLESS
            except UnitError:
                return
            shown = f"in {unit}" if unit else "a bare number"
        if limit.unit is not None:
            try:
                unit_dim = u.parse_unit(limit.unit)[1]
            except UnitError as err:
                self.add(src, loc + ("unit",), f"unit: {err}")
            else:
                if unit_dim != meas_dim:
                    self.add(src, loc + ("unit",), f"unit '{limit.unit}' contradicts measurement '{meas}' ({shown})")
        values: dict[str, Any] = {}
        exact: dict[str, bool] = {}
        for field in ("min", "max", "nominal", "tolerance", "marginal"):
            raw = getattr(limit, field)
            if raw is None:
                continue
            got = self.infer_at(raw, src, loc + (field,))
            if got.problem or got.deferred or got.value is None:
                continue
            value = got.value
            relative = field in ("tolerance", "marginal") and isinstance(value, Quantity) and value.hint in _DIMLESS_HINTS
            vdim = d.dim_of(value)
            if vdim is None:
                self._at(src, loc + (field,), raw, 0, f"{field} of '{meas}' is {d.describe(value, got.exact)}, not a number")
                continue
            bare_ok = not v.is_template(raw)  # literal bare numbers: the literal check reports them
            if not relative and vdim != meas_dim and not (bare_ok and not isinstance(value, Quantity)):
                self._at(src, loc + (field,), raw, 0,
                         f"{field} of '{meas}' is {d.describe(value, got.exact)}, but '{meas}' is {shown}")
                continue
            values[field], exact[field] = value, got.exact
        self._check_order(values, exact, limit, src, loc)

    def check_monitor_dims(self, mon: m.Monitor, src: Source, loc: Loc) -> None:
        """A monitor's ``min``/``max`` against its signal's unit, and their order, for the bound variant.

        Signals of unknown unit (another instrument's, a name outside the logical set) are left
        to run time, and the validator says so when their bounds are expressions.
        """
        unit = signal_units.unit_of(mon.signal)
        bounds = m.Limit(min=mon.min, max=mon.max)
        message = v.limit_order_problem(bounds)
        if message:
            self.add(src, loc, message)
            return
        if unit is None:
            for field in ("min", "max"):
                if v.is_template(getattr(mon, field)):
                    self._defer(src, loc + (field,), f"the unit of signal '{mon.signal}'")
            return
        if unit == "bool":
            return  # a flag is compared as 0/1
        for field in ("min", "max"):
            raw = getattr(mon, field)
            if raw is not None and not v.is_template(raw):
                message = v.literal_problem(raw, unit=unit or None)
                if message is None and unit == "" and isinstance(v.literal(raw), Quantity) \
                        and v.literal(raw).dim != u.DIMENSIONLESS:
                    message = f"'{raw}' is {u.dimension_name(v.literal(raw))}, but '{mon.signal}' is a bare number"
                if message:
                    self.add(src, loc + (field,), f"monitor '{mon.signal}' {field}: {message}")
                    return
        self.check_limit_dims(mon.signal, unit, None, bounds, src, loc)

    def _check_order(self, values: dict, exact: dict, limit: m.Limit, src: Source, loc: Loc) -> None:
        def num(x):
            return x.value if isinstance(x, Quantity) else float(x)

        templated = any(v.is_template(getattr(limit, f)) for f in ("min", "max", "nominal", "tolerance"))
        lo = num(values["min"]) if "min" in values and exact["min"] else None
        hi = num(values["max"]) if "max" in values and exact["max"] else None
        if "nominal" in values and "tolerance" in values and exact["nominal"] and exact["tolerance"]:
            nominal, tol = values["nominal"], values["tolerance"]
            span = abs(num(nominal)) * num(tol) if isinstance(tol, Quantity) and tol.hint in _DIMLESS_HINTS else num(tol)
            if span < 0:
                self.add(src, loc + ("tolerance",), f"tolerance {v.render(tol)} is negative: nominal ± tolerance is inverted{self._where()}")
                return
            lo = num(nominal) - span if lo is None else max(lo, num(nominal) - span)
            hi = num(nominal) + span if hi is None else min(hi, num(nominal) + span)
            if lo is not None and hi is not None and lo > hi:
                self.add(src, loc, f"min/max and nominal ± tolerance leave no passing value{self._where()}")
                return
        if templated and lo is not None and hi is not None and lo > hi and "nominal" not in values:
            self.add(src, loc, f"min {v.render(values['min'])} is greater than max {v.render(values['max'])}{self._where()}")

    # -- results as later expressions see them --------------------------------------------
    def record_results(self, step_id: str | None, measures: dict[str, str], computed: dict[str, Any] | None) -> None:
        if not step_id:
            return
        if computed is not None:
            values = {name: (d.Placeholder(val) if d.dim_of(val) is not None else d.unknown(f"'{step_id}.{name}'"))
                      for name, val in computed.items()}
        elif "*" in measures:
            self.scope.maps[-1][step_id] = d.unknown(f"the measurements of step '{step_id}'")
            return
        else:
            values = {}
            for name, unit in measures.items():
                stand_in = self.tracker.placeholder(unit)
                values[name] = stand_in if d.is_unknown(stand_in) else d.Placeholder(stand_in)
        values["outcome"] = d.unknown(f"the outcome of step '{step_id}'")
        self.scope.maps[-1][step_id] = d.Results(values)

    def computed_values(self, args: dict[str, Any]) -> dict[str, Any]:
        """What ``station.calc``'s arguments evaluate to (exact or estimated), unknown otherwise."""
        out = {}
        for name, raw in args.items():
            got = d.infer(raw, self.scope, self.tracker)
            out[name] = got.value if not (got.problem or got.deferred) else None
        return out

    def push(self, names: dict[str, Any]) -> None:
        self.scope = self.scope.new_child(names)

    def pop(self) -> None:
        self.scope = self.scope.parents
