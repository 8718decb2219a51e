"""What the simulated BMS measures: the pack's true values plus seeded sensor noise.

Cell voltages and temperatures are sampled as one snapshot at most every ``sample_period`` s
(a real BMS front-end scans all cells on a fixed cycle), so many mux frames share one sample.
Open sense wires (``pack.open_tap``) and dead sensors (``pack.dead_sensor``) read ``None``.
"""

from __future__ import annotations

import asyncio

import numpy as np


def unwrap(pack):
    """The pack object itself behind a forwarding slot (``sim.bench.PackSlot``), else ``pack``.

    The slot's ``__getattr__`` forwarding cost 4.9 us a read against 0.5 us direct (timeit on
    this 2-core VM); a BMS reads the pack ~100 times per simulated second. Resolve it once per frame or scan, never
    keep it: the bench rolls a new pack into the slot between runs.
    """
    return getattr(pack, "__dict__", {}).get("current", pack)


_NONE: frozenset[int] = frozenset()


def _indices(value) -> frozenset[int] | set[int]:
    """``pack.open_tap`` / ``dead_sensor`` may be None, one index, or a collection of indices."""
    if value is None or value is False:
        return _NONE
    if isinstance(value, (int, np.integer)):
        return {int(value)}
    if not value:  # the usual case, every scan: no fault
        return _NONE
    return {int(i) for i in value}


def _masked(values: np.ndarray, invalid: frozenset[int] | set[int]) -> list[float | None]:
    out: list[float | None] = values.tolist()
    for i in invalid:
        if 0 <= i < len(out):
            out[i] = None
    return out


def _extremes_np(values: np.ndarray, invalid: frozenset[int] | set[int]) -> tuple[float, int, float, int]:
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
    voltage (V) and current (A) with sensor noise, ``taken`` its loop time (s).
    """

    def __init__(self, pack, *, seed: int = 0, sample_period: float = 0.1) -> None:
        self.pack = pack
        self.rng = np.random.default_rng(seed)
        self.sample_period = sample_period
        spec = getattr(pack, "spec", None)
        self.sigma = {k: float(getattr(spec, f"noise_{k}", d)) for k, d in
                      (("cell_v", 0.0008), ("temp", 0.1), ("current", 0.05), ("pack_v", 0.05))}
        self.taken = float("-inf")
        self.cells: list[float | None] = []
        self.temps: list[float | None] = []
        self.extremes_of: dict[str, tuple[float, int, float, int]] = {}
        self.sensor_fault = False
        self.snap = None
        self.pack_v = self.pack_i = 0.0
        self._sigmas_for: tuple = ()  # (cells, temps, the four sigmas) _sigma_vec was built for
        self._sigma_vec = np.zeros(0)

    def sample(self, now: float | None = None) -> None:
        """Run a measurement cycle if the last one is ``sample_period`` old (one model evaluation).

        ``now``: the loop time (s) if the caller has it (a BMS sender checks this every frame).
        """
        if now is None:
            now = asyncio.get_running_loop().time()
        if now - self.taken < self.sample_period:
            return
        self.taken = now
        pack = unwrap(self.pack)
        snap = self.snap = pack.snapshot()
        true_temps = np.asarray(pack.cell_temperatures(), dtype=float)
        cells, temps = len(snap.cell_voltages), len(true_temps)
        # One draw for the whole cycle, in the order the readings were drawn one by one (cells,
        # temperatures, pack V, current): the same numbers from the same seed, one numpy call.
        noise = self.rng.standard_normal(cells + temps + 2) * self._sigmas(cells, temps)
        volts = snap.cell_voltages + noise[:cells]
        temps_read = true_temps + noise[cells:cells + temps]
        self.pack_v = snap.pack_voltage + float(noise[-2])
        self.pack_i = snap.pack_current + float(noise[-1])
        open_taps = _indices(getattr(pack, "open_tap", None))
        dead = _indices(getattr(pack, "dead_sensor", None))
        self.cells = _masked(volts, open_taps)
        self.temps = _masked(temps_read, dead)
        # computed once per scan: every min/max signal of every frame reads these
        self.extremes_of = {"cell_voltage": _extremes_np(volts, open_taps),
                            "cell_temperature": _extremes_np(temps_read, dead)}
        self.sensor_fault = bool(open_taps or dead)

    def _sigmas(self, cells: int, temps: int) -> np.ndarray:
        """Noise sigma per draw of a cycle: each cell V, each temperature, pack V, current."""
        sigma = self.sigma
        key = (cells, temps, sigma["cell_v"], sigma["temp"], sigma["pack_v"], sigma["current"])
        if key != self._sigmas_for:
            self._sigmas_for = key
            self._sigma_vec = np.concatenate((np.full(cells, key[2]), np.full(temps, key[3]), key[4:]))
        return self._sigma_vec

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
