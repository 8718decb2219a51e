"""The unit table of the plan language: dimensions, unit symbols, parsing and naming units.

A ``Dim`` holds exponents over five bases, V, A, s, Pa, degC. Derived units follow: ohm = V/A,
W = V*A, F = A*s/V, Hz = 1/s, Ah = 3600 A*s, Wh = 3600 V*A*s. Pressure is a base of its own
because plans have no lengths. ``%`` and ``ppm`` are dimensionless (x 0.01, x 1e-6).
"""

from __future__ import annotations

import difflib
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
def dim_combine(a: Dim, b: Dim, sign: int) -> Dim:
    """``a * b`` (sign 1) or ``a / b`` (sign -1) as dimensions."""
    return Dim(*(x + sign * y for x, y in zip(a, b)))


@lru_cache(maxsize=1024)
def dim_pow(a: Dim, n: int) -> Dim:
    """``a ** n`` as a dimension."""
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
        dim = dim_combine(dim, dim_pow(d, power), sign)
    return scale, dim


# --- naming dimensions ----------------------------------------------------------------------

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
DIM_NAMES = {
    DIMENSIONLESS: "dimensionless", _V: "voltage", _A: "current", _S: "time", _OHM: "resistance",
    _W: "power", _CHARGE: "charge", _ENERGY: "energy", _FARAD: "capacitance", _HERTZ: "frequency",
    _PA: "pressure", TEMPERATURE: "temperature", _PER_AMP: "resistance per volt",
}


@lru_cache(maxsize=256)
def render(dim: Dim) -> tuple[str, str, float, tuple[int, ...]]:
    """How ``dim`` is written: (unit, prefix stem, scale, powers of ten), as in ``_RENDER``."""
    if dim in _RENDER:
        return _RENDER[dim]
    def term(sym: str, e: int) -> str:
        return sym if e == 1 else f"{sym}^{e}"
    num = [term(s, e) for s, e in zip(Dim._fields, dim) if e > 0]
    den = [term(s, -e) for s, e in zip(Dim._fields, dim) if e < 0]
    text = "/".join(["*".join(num) or "1", *den])
    prefixable = bool(num) and "^" not in num[0]
    return text, text, 1.0, ((-6, -3, 0, 3) if prefixable else (0,))


def dim_text(dim: Dim) -> str:
    """A dimension as messages name it: ``a bare number`` or its canonical unit (``ohm/V``)."""
    return "a bare number" if dim == DIMENSIONLESS else render(dim)[0]
