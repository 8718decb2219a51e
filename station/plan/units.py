"""Physical quantities for the plan language: SI values over a small dimension system.

Every number in a plan carries a unit (``800 V``, ``100 mOhm``, ``45 degC``). A ``Quantity``
holds its value in SI base units and a ``Dim``: exponents over five bases, V, A, s, Pa, degC.
Derived units follow: ohm = V/A, W = V*A, F = A*s/V, Hz = 1/s, Ah = 3600 A*s, Wh = 3600 V*A*s.
Pressure is a base of its own because plans have no lengths.

Temperature is ``degC`` only, and absolute: adding two temperatures is refused; subtracting
them gives a difference that is still written in degC (``abs(t - t_amb) <= 3 degC``). There
is no kelvin. ``%`` and ``ppm`` are dimensionless (x 0.01, x 1e-6) and a quantity written with
them remembers it, so ``0.5 %`` formats back as ``0.5 %``.

The dimensions and the unit table live in ``units_table``; this module is the public API and
re-exports them.
"""

from __future__ import annotations

import builtins
import math
import operator
import re
from functools import lru_cache

# re-exported: ``station.plan.units`` keeps the API it had as one module
from station.plan.units_table import (
    DIM_NAMES,
    DIMENSIONLESS,
    MAX_UNIT_POWER,
    TEMPERATURE,
    UNITS,
    Dim,
    UnitError,
    dim_combine,
    dim_pow,
    dim_text,
    parse_unit,
    render,
)

_HINTED = ("%", "ppm")  # dimensionless units a quantity remembers for display
_NUMBER = re.compile(r"\s*([-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)\s*(.*?)\s*", re.S)


@lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Quantity:
    m = _NUMBER.fullmatch(text)
    unit = m.group(2) if m else ""
    if not m or re.search(r"\s", unit) or (unit[:1] in tuple("0123456789.+-") and unit[:2] != "1/"):
        raise UnitError(f"bad quantity {text!r}: expected a number and a unit, e.g. '800 V'")
    number, unit = m.groups()
    value = float(number)
    if not math.isfinite(value):
        raise UnitError(f"bad quantity {text!r}: number out of range")
    if not unit:
        return Quantity(value)
    try:
        scale, dim = parse_unit(unit)
    except UnitError as err:
        raise UnitError(f"{err} in {text!r}") from None
    return Quantity(value * scale, dim, unit if unit in _HINTED else None)


def parse_quantity(text: str) -> Quantity:
    """Parse ``"800 V"``, ``"100 mOhm"``, ``"0.5 %"``, ``"100 ohm/V"``; a bare number is dimensionless."""
    if not isinstance(text, str):
        raise UnitError(f"expected a quantity string such as '800 V', got {text!r}")
    return _parse_cached(text)


# --- the quantity --------------------------------------------------------------------------

def _coerce(other) -> tuple[float, Dim] | None:
    if isinstance(other, Quantity):
        return other.value, other.dim
    if isinstance(other, (int, float)) and not isinstance(other, bool):
        return other, DIMENSIONLESS
    return None


class Quantity:
    """An immutable value in SI base units with its dimension (``Quantity(0.1, Dim(V=1, A=-1))``)."""

    __slots__ = ("value", "dim", "hint")

    def __init__(self, value: float, dim: Dim = DIMENSIONLESS, hint: str | None = None) -> None:
        # The slots' own setters (__setattr__ refuses), and no dimension compare without a hint:
        # two Quantities per measured step, 6,800 -> 4,500 instructions each (callgrind).
        _set_value(self, float(value))
        _set_dim(self, dim)
        _set_hint(self, hint if hint is not None and dim == DIMENSIONLESS else None)

    def __setattr__(self, name, value):
        raise AttributeError("Quantity is immutable")

    __delattr__ = __setattr__

    def __reduce__(self):
        return (Quantity, (self.value, self.dim, self.hint))

    def to(self, unit: str) -> float:
        """This value expressed in ``unit`` (``parse_quantity('2 min').to('s') == 120``)."""
        scale, dim = parse_unit(unit)
        if dim != self.dim:
            raise UnitError(f"cannot convert {dim_text(self.dim)} to {unit}")
        return self.value / scale

    # arithmetic: + - need equal dimensions; * / combine them
    def _same(self, other, verb: str):
        o = _coerce(other)
        if o is None:
            return None
        if o[1] != self.dim:
            raise UnitError(f"cannot {verb} {dim_text(self.dim)} and {dim_text(o[1])}")
        return o[0]

    def __add__(self, other):
        v = self._same(other, "add")
        if v is None:
            return NotImplemented
        if self.dim == TEMPERATURE:
            raise UnitError("cannot add two temperatures (degC is absolute; subtract to get a difference)")
        return Quantity(self.value + v, self.dim, self.hint or getattr(other, "hint", None))

    __radd__ = __add__

    def __sub__(self, other):
        v = self._same(other, "subtract")
        return NotImplemented if v is None else Quantity(self.value - v, self.dim, self.hint)

    def __rsub__(self, other):
        v = self._same(other, "subtract")
        return NotImplemented if v is None else Quantity(v - self.value, self.dim, self.hint)

    def __mul__(self, other):
        o = _coerce(other)
        if o is None:
            return NotImplemented
        hint = self.hint if not isinstance(other, Quantity) else None
        return Quantity(self.value * o[0], dim_combine(self.dim, o[1], 1), hint)

    __rmul__ = __mul__

    def __truediv__(self, other):
        o = _coerce(other)
        if o is None:
            return NotImplemented
        hint = self.hint if not isinstance(other, Quantity) else None
        return Quantity(self.value / o[0], dim_combine(self.dim, o[1], -1), hint)

    def __rtruediv__(self, other):
        o = _coerce(other)
        return NotImplemented if o is None else Quantity(o[0] / self.value, dim_combine(o[1], self.dim, -1))

    def __floordiv__(self, other):
        v = self._same(other, "divide")
        return NotImplemented if v is None else Quantity(self.value // v)

    def __mod__(self, other):
        v = self._same(other, "take the remainder of")
        return NotImplemented if v is None else Quantity(self.value % v, self.dim, self.hint)

    def __pow__(self, n):
        if isinstance(n, Quantity):
            if n.dim != DIMENSIONLESS:
                raise UnitError(f"an exponent must be a bare number, not {dim_text(n.dim)}")
            n = n.value
        if not isinstance(n, (int, float)) or isinstance(n, bool):
            return NotImplemented
        if self.dim == DIMENSIONLESS:
            return Quantity(math.pow(self.value, n))
        if n != int(n) or abs(n) > MAX_UNIT_POWER:
            raise UnitError(f"a quantity in {dim_text(self.dim)} can only be raised to a small integer power")
        return Quantity(math.pow(self.value, n), dim_pow(self.dim, int(n)))

    def __rpow__(self, base):
        if self.dim != DIMENSIONLESS:
            raise UnitError(f"an exponent must be a bare number, not {dim_text(self.dim)}")
        return NotImplemented if _coerce(base) is None else math.pow(base, self.value)

    def __neg__(self):
        return Quantity(-self.value, self.dim, self.hint)

    def __pos__(self):
        return self

    def __abs__(self):
        return Quantity(abs(self.value), self.dim, self.hint)

    def __round__(self, ndigits: int | None = None):
        return Quantity(round(self.value, ndigits or 0), self.dim, self.hint)

    def __bool__(self) -> bool:
        return self.value != 0

    def __float__(self) -> float:
        if self.dim != DIMENSIONLESS:
            raise UnitError(f"cannot use {self} as a bare number")
        return self.value

    def __int__(self) -> int:
        return int(self.__float__())

    # comparisons: equal dimensions only; a bare number only against a dimensionless value
    def __eq__(self, other):
        o = _coerce(other)
        if o is None:
            return NotImplemented
        return o[1] == self.dim and self.value == o[0]

    def __hash__(self) -> int:
        return hash(self.value) if self.dim == DIMENSIONLESS else hash((self.value, self.dim))

    def _cmp(self, other, op):
        o = _coerce(other)
        if o is None:
            return NotImplemented
        if o[1] != self.dim:
            raise UnitError(f"cannot compare {dim_text(self.dim)} and {dim_text(o[1])}")
        return op(self.value, o[0])

    def __lt__(self, other):
        return self._cmp(other, operator.lt)

    def __le__(self, other):
        return self._cmp(other, operator.le)

    def __gt__(self, other):
        return self._cmp(other, operator.gt)

    def __ge__(self, other):
        return self._cmp(other, operator.ge)

    def __str__(self) -> str:
        return format_quantity(self)

    def __format__(self, spec: str) -> str:
        """``f"{q:.3g}"`` sets significant digits; any other spec pads the text as ``str`` does."""
        m = re.fullmatch(r"\.([0-9]{1,2})g", spec)
        return format_quantity(self, digits=int(m.group(1))) if m else builtins.format(str(self), spec)

    def __repr__(self) -> str:
        return f"Quantity({self.value!r}, {dim_text(self.dim) if self.dim != DIMENSIONLESS else '1'!r})"


_set_value, _set_dim, _set_hint = (Quantity.__dict__[name].__set__ for name in Quantity.__slots__)


def sqrt(q: Quantity) -> Quantity:
    """Square root; every dimension exponent must be even (sqrt of V^2 is V, of V is refused)."""
    if any(e % 2 for e in q.dim):
        raise UnitError(f"cannot take the square root of {dim_text(q.dim)}")
    if q.value < 0:
        raise UnitError("cannot take the square root of a negative value")
    return Quantity(math.sqrt(q.value), Dim(*(e // 2 for e in q.dim)))


# --- rendering ------------------------------------------------------------------------------

_PREFIX_OF = {-12: "p", -9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G"}


def _num(x: float, digits: int) -> str:
    text = builtins.format(x, f".{digits}g")
    return "0" if text == "-0" else text


def format_quantity(q: Quantity, unit: str | None = None, *, digits: int = 6) -> str:
    """``"800 V"``; the best SI prefix unless ``unit`` is given (0.1 ohm -> ``"100 mOhm"``)."""
    if unit is not None:
        return f"{_num(q.to(unit), digits)} {unit}".rstrip()
    if q.hint:
        return f"{_num(q.value / UNITS[q.hint][0], digits)} {q.hint}"
    plain, stem, scale, powers = render(q.dim)
    v = q.value / scale
    power = 0
    text = None
    if v and math.isfinite(v) and len(powers) > 1:
        # Every measurement is rendered once per step: the number is formatted once (it was
        # formatted twice, once to test for 1000) and the prefix found without a generator:
        # 21,300 -> 11,500 instructions per call (callgrind, '1 V').
        e3 = math.floor(math.log10(abs(v)) / 3) * 3
        power = powers[0]
        for p in powers:  # ascending: the largest power <= e3, else the smallest
            if p <= e3:
                power = p
        text = _num(v / 10.0 ** power if power else v, digits)
        if abs(float(text)) >= 1000 and power < powers[-1]:
            power = powers[powers.index(power) + 1]
            text = None
    if text is None:
        text = _num(v / 10.0 ** power if power else v, digits)
    unit_text = _PREFIX_OF[power] + stem if power else plain
    return f"{text} {unit_text}".rstrip()


format = format_quantity  # the plan API name: units.format(q, unit=None)


def unit_of(q: Quantity) -> str:
    """Canonical unit without prefix: ``V``, ``A``, ``s``, ``ohm``, ``degC``, ``Pa``, ``Ah``, ``Wh``, ``%``."""
    return q.hint or render(q.dim)[0]


def dimension_name(q: Quantity) -> str:
    """``voltage``, ``current``, ``resistance``, ... or the canonical unit of a composite."""
    return DIM_NAMES.get(q.dim) or f"[{render(q.dim)[0]}]"
