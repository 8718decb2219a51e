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
        temp = np.clip(temp, ts[0], ts[-1])
        i = np.clip(np.searchsorted(ts, temp, side="right") - 1, 0, len(ts) - 2)
        w = (temp - ts[i]) / (ts[i + 1] - ts[i])
        rows = np.array([self._row(r, soc) for r in self._ys])  # (temps, *shape of soc)
        if not np.ndim(soc) and not np.ndim(temp):
            return float(rows[i] * (1.0 - w) + rows[i + 1] * w)
        shape = np.broadcast_shapes(np.shape(soc), np.shape(temp))
        rows = np.broadcast_to(rows.reshape(len(self._ys), *np.shape(soc)), (len(self._ys), *shape))
        i, w = np.broadcast_to(i, shape), np.broadcast_to(w, shape)
        picked_lo = np.take_along_axis(rows, i[None], axis=0)[0]
        picked_hi = np.take_along_axis(rows, (i + 1)[None], axis=0)[0]
        return picked_lo * (1.0 - w) + picked_hi * w

    def at(self, soc: float, temp: float = 25.0) -> float:
        """One value (float) at ``soc`` and ``temp``."""
        return float(self(float(soc), float(temp)))


Param = float | Table


def evaluate(param: Param, soc, temp):
    """A constant as it is, a table at (``soc``, ``temp``)."""
    return param(soc, temp) if isinstance(param, Table) else param
