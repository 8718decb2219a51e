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


class Measurements:
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

    def sample(self) -> None:
        """Refresh the cell/temperature snapshot if it is older than the sample period."""
        now = asyncio.get_running_loop().time()
        if now - self._taken < self.sample_period:
            return
        self._taken = now
        pack = self.pack
        volts = np.asarray(pack.cell_voltages(), dtype=float)
        volts = volts + self.rng.normal(0.0, self.sigma["cell_v"], volts.shape)
        temps = np.asarray(pack.cell_temperatures(), dtype=float)
        temps = temps + self.rng.normal(0.0, self.sigma["temp"], temps.shape)
        open_taps = _indices(getattr(pack, "open_tap", None))
        dead = _indices(getattr(pack, "dead_sensor", None))
        self.cells = [None if i in open_taps else float(v) for i, v in enumerate(volts)]
        self.temps = [None if i in dead else float(t) for i, t in enumerate(temps)]
        # computed once per scan: every min/max signal of every frame reads these
        self.extremes_of = {"cell_voltage": self.extremes(self.cells),
                            "cell_temperature": self.extremes(self.temps)}
        self.sensor_fault = bool(open_taps or dead)

    def pack_voltage(self) -> float:
        return float(self.pack.pack_voltage()) + float(self.rng.normal(0.0, self.sigma["pack_v"]))

    def pack_current(self) -> float:
        return float(self.pack.pack_current()) + float(self.rng.normal(0.0, self.sigma["current"]))

    @staticmethod
    def extremes(values: list[float | None]) -> tuple[float, int, float, int]:
        """(min, index of min, max, index of max) over the valid entries; zeros if none."""
        valid = [(v, i) for i, v in enumerate(values) if v is not None]
        if not valid:
            return 0.0, 0, 0.0, 0
        low, high = min(valid), max(valid)
        return low[0], low[1], high[0], high[1]
