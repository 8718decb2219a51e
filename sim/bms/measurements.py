"""What the simulated BMS measures: the pack's true values plus seeded sensor noise.

Cell voltages and temperatures are sampled as one snapshot at most every ``sample_period`` s
(a real BMS front-end scans all cells on a fixed cycle), so many mux frames share one sample.
Open sense wires (``pack.open_tap``) and dead sensors (``pack.dead_sensor``) read ``None``.
"""

from __future__ import annotations

import asyncio

import numpy as np


def _indices(value) -> set[int]:
    """``pack.open_tap`` / ``dead_sensor`` may be None, one index, or a collection of indices."""
    if value is None or value is False:
        return set()
    if isinstance(value, (int, np.integer)):
        return {int(value)}
    return {int(i) for i in value}


def _masked(values: np.ndarray, invalid: set[int]) -> list[float | None]:
    out: list[float | None] = values.tolist()
    for i in invalid:
        if 0 <= i < len(out):
            out[i] = None
    return out


def _extremes_np(values: np.ndarray, invalid: set[int]) -> tuple[float, int, float, int]:
    """``Measurements.extremes`` on an array with the ``invalid`` indices left out."""
    if invalid:
        values = values.astype(float, copy=True)
        values[[i for i in invalid if 0 <= i < len(values)]] = np.nan
        if np.isnan(values).all():
            return 0.0, 0, 0.0, 0
        low, high = int(np.nanargmin(values)), int(np.nanargmax(values))
    elif len(values) == 0:
        return 0.0, 0, 0.0, 0
    else:
        low, high = int(values.argmin()), int(values.argmax())
    return float(values[low]), low, float(values[high]), high


class Measurements:
    """One BMS measurement cycle every ``sample_period`` s: cells, temperatures and pack values.

    A real BMS measures on a fixed cycle and its CAN task sends the latest values; so does this
    one. ``snap`` is the pack's ``Snapshot`` of the last cycle, ``pack_v``/``pack_i`` its pack
    voltage (V) and current (A) with sensor noise.
    """

    def __init__(self, pack, *, seed: int = 0, sample_period: float = 0.1) -> None:
        self.pack = pack
        self.rng = np.random.default_rng(seed)
        self.sample_period = sample_period
        spec = getattr(pack, "spec", None)
        self.sigma = {k: float(getattr(spec, f"noise_{k}", d)) for k, d in
                      (("cell_v", 0.0008), ("temp", 0.1), ("current", 0.05), ("pack_v", 0.05))}
        self._taken = float("-inf")
        self.cells: list[float | None] = []
        self.temps: list[float | None] = []
        self.extremes_of: dict[str, tuple[float, int, float, int]] = {}
        self.sensor_fault = False
        self.snap = None
        self.pack_v = self.pack_i = 0.0

    def sample(self) -> None:
        """Run a measurement cycle if the last one is ``sample_period`` old (one model evaluation)."""
        now = asyncio.get_running_loop().time()
        if now - self._taken < self.sample_period:
            return
        self._taken = now
        pack, rng, sigma = self.pack, self.rng, self.sigma
        snap = self.snap = pack.snapshot()
        volts = snap.cell_voltages + rng.normal(0.0, sigma["cell_v"], snap.cell_voltages.shape)
        temps = np.asarray(pack.cell_temperatures(), dtype=float)
        temps = temps + rng.normal(0.0, sigma["temp"], temps.shape)
        self.pack_v = snap.pack_voltage + float(rng.normal(0.0, sigma["pack_v"]))
        self.pack_i = snap.pack_current + float(rng.normal(0.0, sigma["current"]))
        open_taps = _indices(getattr(pack, "open_tap", None))
        dead = _indices(getattr(pack, "dead_sensor", None))
        self.cells = _masked(volts, open_taps)
        self.temps = _masked(temps, dead)
        # computed once per scan: every min/max signal of every frame reads these
        self.extremes_of = {"cell_voltage": _extremes_np(volts, open_taps),
                            "cell_temperature": _extremes_np(temps, dead)}
        self.sensor_fault = bool(open_taps or dead)

    def noise(self, kind: str) -> float:
        """One draw of the sensor noise of ``kind`` ("pack_v", "current", "cell_v", "temp")."""
        return float(self.rng.normal(0.0, self.sigma[kind]))

    def pack_voltage(self) -> float:
        """V now, with noise (a fresh reading, not the cycle's)."""
        return float(self.pack.pack_voltage()) + self.noise("pack_v")

    def pack_current(self) -> float:
        """A now (+ charge), with noise (a fresh reading, not the cycle's)."""
        return float(self.pack.pack_current()) + self.noise("current")

    @staticmethod
    def extremes(values: list[float | None]) -> tuple[float, int, float, int]:
        """(min, index of min, max, index of max) over the valid entries; zeros if none."""
        valid = [(v, i) for i, v in enumerate(values) if v is not None]
        if not valid:
            return 0.0, 0, 0.0, 0
        low, high = min(valid), max(valid)
        return low[0], low[1], high[0], high[1]
