"""Physical quantities for the plan language: SI values over a small dimension system.

Every number in a plan carries a unit (``800 V``, ``100 mOhm``, ``45 degC``). A ``Quantity``
holds its value in SI base units and a ``Dim``: exponents over five bases, V, A, s, Pa, degC.
Derived units follow: ohm = V/A, W = V*A, F = A*s/V, Hz = 1/s, Ah = 3600 A*s, Wh = 3600 V*A*s.
Pressure is a base of its own because plans have no lengths.

Temperature is ``degC`` only, and absolute: adding two temperatures is refused; subtracting
them gives a difference that is still written in degC (``abs(t - t_amb) <= 3 degC``). There
is no kelvin. ``%`` and ``ppm`` are dimensionless (x 0.01, x 1e-6) and a quantity written with
them remembers it, so ``0.5 %`` formats back as ``0.5 %``.
"""

from __future__ import annotations

import builtins
import difflib
import math
import operator
import re
from functools import lru_cache
from typing import NamedTuple


class UnitError(ValueError):
    """A unit or quantity that does not parse, or arithmetic between incompatible dimensions."""


class Dim(NamedTuple):
    """Exponents of the base dimensions."""

    V: int = 0
    A: int = 0
    s: int = 0
    Pa: int = 0
    degC: int = 0


DIMENSIONLESS = Dim()
TEMPERATURE = Dim(degC=1)
_V, _A, _S, _PA = Dim(V=1), Dim(A=1), Dim(s=1), Dim(Pa=1)
_OHM, _W, _CHARGE, _ENERGY = Dim(V=1, A=-1), Dim(V=1, A=1), Dim(A=1, s=1), Dim(V=1, A=1, s=1)
_FARAD, _HERTZ, _PER_AMP = Dim(V=-1, A=1, s=1), Dim(s=-1), Dim(A=-1)
MAX_UNIT_POWER = 16  # refuse V**1000: dimensions stay small integers


@lru_cache(maxsize=4096)
def _dim_combine(a: Dim, b: Dim, sign: int) -> Dim:
    return Dim(*(x + sign * y for x, y in zip(a, b)))


@lru_cache(maxsize=1024)
def _dim_pow(a: Dim, n: int) -> Dim:
    return Dim(*(x * n for x in a))


# --- the unit table ------------------------------------------------------------------------

_PREFIXES = {"p": 1e-12, "n": 1e-9, "u": 1e-6, "\u00b5": 1e-6, "\u03bc": 1e-6,
             "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9}
_PREFIXABLE = {  # symbol -> (SI scale, dimension); these take the SI prefixes above
    "V": (1.0, _V), "A": (1.0, _A), "s": (1.0, _S), "W": (1.0, _W), "F": (1.0, _FARAD),
    "ohm": (1.0, _OHM), "Ohm": (1.0, _OHM), "\u03a9": (1.0, _OHM), "\u2126": (1.0, _OHM),
    "Pa": (1.0, _PA), "bar": (1e5, _PA), "Hz": (1.0, _HERTZ), "J": (1.0, _ENERGY),
    "Ah": (3600.0, _CHARGE), "Wh": (3600.0, _ENERGY),
}
_PLAIN = {
    "min": (60.0, _S), "h": (3600.0, _S), "degC": (1.0, TEMPERATURE), "\u00b0C": (1.0, TEMPERATURE),
    "%": (0.01, DIMENSIONLESS), "ppm": (1e-6, DIMENSIONLESS),
}
UNITS: dict[str, tuple[float, Dim]] = {
    p + u: (ps * us, d) for p, ps in _PREFIXES.items() for u, (us, d) in _PREFIXABLE.items()
}
UNITS.update(_PREFIXABLE)
UNITS.update(_PLAIN)
_ASCII_UNITS = [u for u in UNITS if u.isascii()]  # suggest 'uA', not three spellings of micro
_HINTED = ("%", "ppm")  # dimensionless units a quantity remembers for display


def _suggest(name: str) -> str:
    """' (did you mean 'V'?)' for a mistyped unit, or ''."""
    same_case = [u for u in UNITS if u.lower() == name.lower()]
    close = difflib.get_close_matches(name, _ASCII_UNITS, n=3, cutoff=0.6)
    hints = list(dict.fromkeys(same_case + close))[:3]
    if not hints:
        return ""
    return " (did you mean " + " or ".join(f"'{h}'" for h in hints) + "?)"


_ATOM = re.compile(r"(.+?)(?:\^(-?[0-9]{1,2}))?")


@lru_cache(maxsize=1024)
def parse_unit(text: str) -> tuple[float, Dim]:
    """SI scale and dimension of a unit: ``mOhm``, ``ohm/V``, ``A*h``, ``V^2``, ``1/s``.

    A composite is read left to right without spaces: ``V/A/s`` is V / (A*s).
    """
    parts = re.split(r"([*/])", text.strip())
    scale, dim = 1.0, DIMENSIONLESS
    for i in range(0, len(parts), 2):
        atom, sign = parts[i], (-1 if i and parts[i - 1] == "/" else 1)
        if i == 0 and atom == "1" and len(parts) > 1:
            continue
        m = _ATOM.fullmatch(atom)
        if not m:
            raise UnitError(f"bad unit {text!r}")
        name, power = m.group(1), int(m.group(2) or 1)
        if name not in UNITS:
            raise UnitError(f"unknown unit '{name}'{_suggest(name)}")
        if abs(power) > MAX_UNIT_POWER:
            raise UnitError(f"unit power {power} out of range (at most {MAX_UNIT_POWER})")
        s, d = UNITS[name]
        scale *= s ** (sign * power)
        dim = _dim_combine(dim, _dim_pow(d, power), sign)
    return scale, dim


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

def _dname(dim: Dim) -> str:
    return "a bare number" if dim == DIMENSIONLESS else _render(dim)[0]


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
        object.__setattr__(self, "value", float(value))
        object.__setattr__(self, "dim", dim)
        object.__setattr__(self, "hint", hint if dim == DIMENSIONLESS else None)

    def __setattr__(self, name, value):
        raise AttributeError("Quantity is immutable")

    __delattr__ = __setattr__

    def __reduce__(self):
        return (Quantity, (self.value, self.dim, self.hint))

    def to(self, unit: str) -> float:
        """This value expressed in ``unit`` (``parse_quantity('2 min').to('s') == 120``)."""
        scale, dim = parse_unit(unit)
        if dim != self.dim:
            raise UnitError(f"cannot convert {_dname(self.dim)} to {unit}")
        return self.value / scale

    # arithmetic: + - need equal dimensions; * / combine them
    def _same(self, other, verb: str):
        o = _coerce(other)
        if o is None:
            return None
        if o[1] != self.dim:
            raise UnitError(f"cannot {verb} {_dname(self.dim)} and {_dname(o[1])}")
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
        return Quantity(self.value * o[0], _dim_combine(self.dim, o[1], 1), hint)

    __rmul__ = __mul__

    def __truediv__(self, other):
        o = _coerce(other)
        if o is None:
            return NotImplemented
        hint = self.hint if not isinstance(other, Quantity) else None
        return Quantity(self.value / o[0], _dim_combine(self.dim, o[1], -1), hint)

    def __rtruediv__(self, other):
        o = _coerce(other)
        return NotImplemented if o is None else Quantity(o[0] / self.value, _dim_combine(o[1], self.dim, -1))

    def __floordiv__(self, other):
        v = self._same(other, "divide")
        return NotImplemented if v is None else Quantity(self.value // v)

    def __mod__(self, other):
        v = self._same(other, "take the remainder of")
        return NotImplemented if v is None else Quantity(self.value % v, self.dim, self.hint)

    def __pow__(self, n):
        if isinstance(n, Quantity):
            if n.dim != DIMENSIONLESS:
                raise UnitError(f"an exponent must be a bare number, not {_dname(n.dim)}")
            n = n.value
        if not isinstance(n, (int, float)) or isinstance(n, bool):
            return NotImplemented
        if self.dim == DIMENSIONLESS:
            return Quantity(math.pow(self.value, n))
        if n != int(n) or abs(n) > MAX_UNIT_POWER:
            raise UnitError(f"a quantity in {_dname(self.dim)} can only be raised to a small integer power")
        return Quantity(math.pow(self.value, n), _dim_pow(self.dim, int(n)))

    def __rpow__(self, base):
        if self.dim != DIMENSIONLESS:
            raise UnitError(f"an exponent must be a bare number, not {_dname(self.dim)}")
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
            raise UnitError(f"cannot compare {_dname(self.dim)} and {_dname(o[1])}")
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
        return f"Quantity({self.value!r}, {_dname(self.dim) if self.dim != DIMENSIONLESS else '1'!r})"


def sqrt(q: Quantity) -> Quantity:
    """Square root; every dimension exponent must be even (sqrt of V^2 is V, of V is refused)."""
    if any(e % 2 for e in q.dim):
        raise UnitError(f"cannot take the square root of {_dname(q.dim)}")
    if q.value < 0:
        raise UnitError("cannot take the square root of a negative value")
    return Quantity(math.sqrt(q.value), Dim(*(e // 2 for e in q.dim)))


# --- rendering ------------------------------------------------------------------------------

_RENDER: dict[Dim, tuple[str, str, float, tuple[int, ...]]] = {
    # dim: (unit without prefix, stem a prefix attaches to, scale, allowed powers of ten)
    DIMENSIONLESS: ("", "", 1.0, (0,)),
    _V: ("V", "V", 1.0, (-6, -3, 0, 3)),
    _A: ("A", "A", 1.0, (-6, -3, 0, 3)),
    _S: ("s", "s", 1.0, (-9, -6, -3, 0)),
    _OHM: ("ohm", "Ohm", 1.0, (-6, -3, 0, 3, 6, 9)),
    _W: ("W", "W", 1.0, (-3, 0, 3, 6)),
    _CHARGE: ("Ah", "Ah", 3600.0, (-3, 0, 3)),
    _ENERGY: ("Wh", "Wh", 3600.0, (-3, 0, 3, 6)),
    _FARAD: ("F", "F", 1.0, (-12, -9, -6, -3, 0)),
    _HERTZ: ("Hz", "Hz", 1.0, (0, 3, 6)),
    _PA: ("Pa", "Pa", 1.0, (0, 3, 6)),
    TEMPERATURE: ("degC", "degC", 1.0, (0,)),
    _PER_AMP: ("ohm/V", "Ohm/V", 1.0, (0, 3, 6)),
}
_DIM_NAMES = {
    DIMENSIONLESS: "dimensionless", _V: "voltage", _A: "current", _S: "time", _OHM: "resistance",
    _W: "power", _CHARGE: "charge", _ENERGY: "energy", _FARAD: "capacitance", _HERTZ: "frequency",
    _PA: "pressure", TEMPERATURE: "temperature", _PER_AMP: "resistance per volt",
}
_PREFIX_OF = {-12: "p", -9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G"}


@lru_cache(maxsize=256)
def _render(dim: Dim) -> tuple[str, str, float, tuple[int, ...]]:
    if dim in _RENDER:
        return _RENDER[dim]
    def term(sym: str, e: int) -> str:
        return sym if e == 1 else f"{sym}^{e}"
    num = [term(s, e) for s, e in zip(Dim._fields, dim) if e > 0]
    den = [term(s, -e) for s, e in zip(Dim._fields, dim) if e < 0]
    text = "/".join(["*".join(num) or "1", *den])
    prefixable = bool(num) and "^" not in num[0]
    return text, text, 1.0, ((-6, -3, 0, 3) if prefixable else (0,))


def _num(x: float, digits: int) -> str:
    text = builtins.format(x, f".{digits}g")
    return "0" if text == "-0" else text


def format_quantity(q: Quantity, unit: str | None = None, *, digits: int = 6) -> str:
    """``"800 V"``; the best SI prefix unless ``unit`` is given (0.1 ohm -> ``"100 mOhm"``)."""
    if unit is not None:
        return f"{_num(q.to(unit), digits)} {unit}".rstrip()
    if q.hint:
        return f"{_num(q.value / UNITS[q.hint][0], digits)} {q.hint}"
    plain, stem, scale, powers = _render(q.dim)
    v = q.value / scale
    power = 0
    if v and math.isfinite(v) and len(powers) > 1:
        e3 = math.floor(math.log10(abs(v)) / 3) * 3
        power = max((p for p in powers if p <= e3), default=powers[0])
        if abs(float(_num(v / 10.0 ** power, digits))) >= 1000 and power < powers[-1]:
            power = powers[powers.index(power) + 1]
    text = _num(v / 10.0 ** power if power else v, digits)
    unit_text = _PREFIX_OF[power] + stem if power else plain
    return f"{text} {unit_text}".rstrip()


format = format_quantity  # noqa: A001 - the plan API name: units.format(q, unit=None)


def unit_of(q: Quantity) -> str:
    """Canonical unit without prefix: ``V``, ``A``, ``s``, ``ohm``, ``degC``, ``Pa``, ``Ah``, ``Wh``, ``%``."""
    return q.hint or _render(q.dim)[0]


def dimension_name(q: Quantity) -> str:
    """``voltage``, ``current``, ``resistance``, ... or the canonical unit of a composite."""
    return _DIM_NAMES.get(q.dim) or f"[{_render(q.dim)[0]}]"
