"""Static inference at bind time: what an argument or limit evaluates to for one variant.

Parameters are known exactly once the variant is chosen; earlier results are not, so they are
stood in for by *placeholders*: quantities of the measured dimension with arbitrary values. An
expression is evaluated with the real parameters and these placeholders, which yields its
dimension (and, when no placeholder was read, its exact value). Only a refusal caused by units
(``UnitError``) is a plan bug here: any other failure may be an artefact of the placeholder
values (a difference of two of them may be zero) and is left to run time. A name whose value
only the run knows (the serial, a loop variable over results, a string measurement) stops the
inference: the expression is *deferred*, and the validator says so.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from station.plan import expr as ex, units as u, values as v
from station.plan.units import Quantity, UnitError


class RunTimeOnly(Exception):
    """The expression reads a value only the run knows (its ``name``)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _Unknown:
    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what


def is_unknown(value: Any) -> bool:
    return isinstance(value, _Unknown)


def unknown(what: str) -> _Unknown:
    """A value only the run knows, e.g. ``unknown('serial')``."""
    return _Unknown(what)


class Tracker:
    """Counts reads of placeholders, so an exact value can be told from an estimate."""

    def __init__(self) -> None:
        self.placeholder_reads = 0
        self._next = 0

    def placeholder(self, unit: str) -> Any:
        """A stand-in for a measurement in ``unit``: distinct, non-zero, of its dimension."""
        if unit in ("bool", "str"):
            return unknown(f"a {unit} measurement")
        self._next += 1
        value = 1.0 + 0.137 * self._next
        if unit == "":
            return value
        try:
            _scale, dim = u.parse_unit(unit)
        except UnitError:
            return unknown(f"a value in {unit}")
        return Quantity(value, dim, unit if unit in ("%", "ppm") else None)


class Scope(Mapping):
    """Names for inference: unknown values raise ``RunTimeOnly``; placeholder reads are counted."""

    def __init__(self, values: Mapping[str, Any], tracker: Tracker, what: str = "") -> None:
        self._values, self._tracker, self._what = values, tracker, what

    def __getitem__(self, name: str) -> Any:
        value = self._values[name]
        if isinstance(value, _Unknown):
            raise RunTimeOnly(f"{self._what}{name}" if self._what else value.what)
        if isinstance(value, Results):
            return Scope(value.values, self._tracker, f"{name}.")
        if isinstance(value, Placeholder):
            self._tracker.placeholder_reads += 1
            return value.value
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


@dataclass(frozen=True)
class Placeholder:
    value: Any


@dataclass(frozen=True)
class Results:
    """An earlier step's measurements (placeholders) as seen by a later expression."""

    values: dict[str, Any]


@dataclass(frozen=True)
class Inferred:
    """The outcome of inferring one raw value. ``deferred`` names what only the run knows."""

    value: Any = None
    exact: bool = False
    deferred: str | None = None
    problem: str | None = None
    offset: int = 0  # where ``problem`` lies inside the raw text


def infer(raw: Any, names: Mapping[str, Any], tracker: Tracker) -> Inferred:
    """Evaluate ``raw`` (a literal or a ``${...}`` template) for inference."""
    if not v.is_template(raw):
        try:
            return Inferred(v.literal(raw), exact=True)
        except Exception:  # literal problems are reported by the literal checks
            return Inferred(deferred="an unreadable literal")
    before = tracker.placeholder_reads
    try:
        value = v.evaluate(raw, Scope(names, tracker))
    except RunTimeOnly as err:
        return Inferred(deferred=err.name)
    except v.ValueProblem as err:
        message, offset, by_units = _expr_problem(raw, names, tracker)
        if by_units or tracker.placeholder_reads == before:
            return Inferred(problem=message or str(err), offset=offset)
        return Inferred(deferred="earlier results (refused the stand-in values)")
    return Inferred(value, exact=tracker.placeholder_reads == before)


def _unit_cause(err: BaseException) -> bool:
    seen = 0
    cause: BaseException | None = err
    while cause is not None and seen < 10:
        if isinstance(cause, UnitError):
            return True
        cause = cause.__cause__
        seen += 1
    return False


def _expr_problem(raw: str, names, tracker) -> tuple[str | None, int, bool]:
    """The refusal's own message, its offset inside the template, and whether units caused it."""
    try:
        for start, _end, expr in ex.find_expressions(raw):
            try:
                expr.evaluate(Scope(names, tracker))
            except ex.ExprError as err:
                return err.message, start + 2 + err.offset, _unit_cause(err)
    except Exception:  # a second look only; the first refusal is reported
        pass
    return None, 0, False


def dim_of(value: Any) -> u.Dim | None:
    """The dimension of a value: a Quantity's, DIMENSIONLESS for bare numbers, None otherwise."""
    if isinstance(value, Quantity):
        return value.dim
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return u.DIMENSIONLESS
    return None


def describe(value: Any, exact: bool = True) -> str:
    """'voltage (58.8 V)' style text for messages; an estimate shows its kind only."""
    if isinstance(value, Quantity):
        return f"{u.dimension_name(value)} ({v.render(value)})" if exact else u.dimension_name(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"a bare number ({v.render(value)})" if exact else "a bare number"
    return repr(value)


def unit_dims(unit: str) -> list[u.Dim]:
    """Dimensions a unit spec allows ('V', '%|V', '' = dimensionless)."""
    dims = []
    for part in unit.split("|"):
        if part in ("", "bool", "str"):
            dims.append(u.DIMENSIONLESS)
        else:
            try:
                dims.append(u.parse_unit(part)[1])
            except UnitError:
                pass
    return dims
