"""A cell parameter as a table over state of charge and, optionally, temperature.

``Table(soc, values)`` is linear in SOC; ``Table(soc, values, temps=...)`` is bilinear, one row
of ``values`` per temperature. SOC points are fractions 0..1 (pack files write percent).
Outside the SOC points a table either holds its end values (resistances, capacitances: a cell
past full is no better known than at full) or, with ``extrapolate=True`` (OCV), continues its
end segments, so an overcharged element keeps a monotonic, finite voltage. Temperatures outside
the table hold the nearest row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

try:  # np.interp's compiled core: its Python wrapper's checks cost ~40 % of a call
    from numpy._core.multiarray import interp as _interp
except ImportError:  # another numpy layout: the public function computes the same
    _interp = np.interp


@dataclass(frozen=True, eq=False)
class Table:
    """Values (unit of the parameter) over SOC (0..1) and optionally temperature (degC)."""

    soc: tuple[float, ...]
    values: tuple  # tuple[float, ...] without temps; tuple[tuple[float, ...], ...] (per temp) with
    temps: tuple[float, ...] | None = None
    extrapolate: bool = False

    def __post_init__(self) -> None:
        xs = np.asarray(self.soc, dtype=float)
        ys = np.asarray(self.values, dtype=float)
        if xs.ndim != 1 or len(xs) < 2 or np.any(np.diff(xs) <= 0):
            raise ValueError("a table needs at least two strictly increasing SOC points")
        rows = 1 if self.temps is None else len(self.temps)
        if self.temps is not None:
            ts = np.asarray(self.temps, dtype=float)
            if ts.ndim != 1 or np.any(np.diff(ts) <= 0):
                raise ValueError("table temperatures must be strictly increasing")
            if ys.shape != (rows, len(xs)):
                raise ValueError(f"a table by temperature needs {rows} rows of {len(xs)} values")
        elif ys.shape != (len(xs),):
            raise ValueError(f"a table needs {len(xs)} values, one per SOC point")
        ys = ys.reshape(rows, len(xs))
        if self.extrapolate:  # end segments continued to SOC -1 and 2: one plain interpolation a call
            lo = ys[:, :1] - (ys[:, 1:2] - ys[:, :1]) / (xs[1] - xs[0]) * (xs[0] + 1.0)
            hi = ys[:, -1:] + (ys[:, -1:] - ys[:, -2:-1]) / (xs[-1] - xs[-2]) * (2.0 - xs[-1])
            xs = np.concatenate([[-1.0], xs, [2.0]])
            ys = np.concatenate([lo, ys, hi], axis=1)
        object.__setattr__(self, "_xs", xs)
        object.__setattr__(self, "_ys", ys)
        object.__setattr__(self, "_ts", None if self.temps is None else np.asarray(self.temps, dtype=float))

    def _key(self) -> tuple:
        return (self.soc, self.values, self.temps, self.extrapolate)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Table) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def _row(self, row: np.ndarray, soc):
        return _interp(soc, self._xs, row)

    def __call__(self, soc, temp=25.0):
        """The parameter at ``soc`` (0..1) and ``temp`` (degC), scalars or arrays alike."""
        if self._ts is None:
            return self._row(self._ys[0], soc)
        ts = self._ts
        if len(ts) == 1:
            return self._row(self._ys[0], soc)
        if not np.ndim(soc) and not np.ndim(temp):
            temp = min(max(temp, ts[0]), ts[-1]) if temp == temp else temp  # NaN stays NaN
            i = min(max(int(np.searchsorted(ts, temp, side="right")) - 1, 0), len(ts) - 2)
            w = (temp - ts[i]) / (ts[i + 1] - ts[i])
            return float(self._row(self._ys[i], soc) * (1.0 - w) + self._row(self._ys[i + 1], soc) * w)
        return self._bilinear(*np.broadcast_arrays(np.asarray(soc, dtype=float), np.asarray(temp, dtype=float)))

    def _bilinear(self, soc: np.ndarray, temp: np.ndarray) -> np.ndarray:
        """Arrays of one shape: the SOC and temperature cells found once per element and the four
        corners weighted (the pack's per-cell R0/R1/C1 tables on every model step: one
        interpolation per table row, stacked, broadcast and picked cost ~3x this)."""
        xs, ts, ys = self._xs, self._ts, self._ys
        nx = len(xs)
        s = np.minimum(np.maximum(soc, xs[0]), xs[-1])  # np.interp holds its end values
        j = np.searchsorted(xs, s, side="right") - 1
        np.minimum(np.maximum(j, 0, out=j), nx - 2, out=j)  # np.clip's Python wrapper costs more
        u = (s - xs[j]) / (xs[j + 1] - xs[j])
        t = np.minimum(np.maximum(temp, ts[0]), ts[-1])
        i = np.searchsorted(ts, t, side="right") - 1
        np.minimum(np.maximum(i, 0, out=i), len(ts) - 2, out=i)
        w = (t - ts[i]) / (ts[i + 1] - ts[i])
        flat = ys.ravel()
        k = i * nx + j
        lo = flat[k] * (1.0 - u) + flat[k + 1] * u
        hi = flat[k + nx] * (1.0 - u) + flat[k + nx + 1] * u
        return lo * (1.0 - w) + hi * w

    def at(self, soc: float, temp: float = 25.0) -> float:
        """One value (float) at ``soc`` and ``temp``."""
        return float(self(float(soc), float(temp)))


Param = float | Table


def evaluate(param: Param, soc, temp):
    """A constant as it is, a table at (``soc``, ``temp``)."""
    return param(soc, temp) if isinstance(param, Table) else param
