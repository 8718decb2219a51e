"""Call-recording fake instruments for engine tests (the engine's contract, not a protocol)."""

from __future__ import annotations

import asyncio

from drivers.capabilities import BondResult, Identity, IrResult
from drivers.errors import DeviceError


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, tuple]] = []

    def log(self, who: str, what: str, *args) -> None:
        self.calls.append((who, what, args))

    def names(self, who: str) -> list[str]:
        return [what for w, what, _ in self.calls if w == who]


class FakeInstrument:
    def __init__(self, name: str, rec: Recorder, *, safe_error: Exception | None = None) -> None:
        self.name = name
        self.rec = rec
        self.safe_error = safe_error

    async def open(self) -> None:
        self.rec.log(self.name, "open")

    async def close(self) -> None:
        self.rec.log(self.name, "close")

    async def identify(self) -> Identity:
        return Identity("Fake", self.name, "0001", "1.0", None)

    async def safe_state(self) -> list[str]:
        self.rec.log(self.name, "safe_state")
        if self.safe_error:
            raise self.safe_error
        return [f"{self.name} safe"]


class FakeDmm(FakeInstrument):
    def __init__(self, name, rec, *, volts=(400.0,), delay=0.0, error_at: set[int] | None = None, **kw) -> None:
        super().__init__(name, rec, **kw)
        self.volts = list(volts)  # measurement reads, in order (the last one repeats)
        self.bus = [0.0]  # reads at NPLC 1 (the safe-state confirmation), in order
        self.delay = delay
        self.error_at = error_at or set()
        self.reads = 0

    async def measure_dc_voltage(self, range_v=None, nplc=10.0) -> float:
        self.reads += 1
        self.rec.log(self.name, "measure", range_v)
        if self.reads in self.error_at:
            raise DeviceError("overload", instrument=self.name, command="READ?", code=-230)
        if self.delay:
            await asyncio.sleep(self.delay)
        series = self.bus if nplc == 1.0 else self.volts
        return series.pop(0) if len(series) > 1 else series[0]


class FakeFixture(FakeInstrument):
    def __init__(self, name, rec, **kw) -> None:
        super().__init__(name, rec, **kw)
        self.inputs = {"estop_released": True, "guard_closed": True, "pack_present": True, "clamp_closed": True}

    async def read_inputs(self) -> dict[str, bool]:
        return dict(self.inputs)

    async def set_output(self, name: str, on: bool) -> None:
        self.rec.log(self.name, "set_output", name, on)


class FakeBms(FakeInstrument):
    def __init__(self, name, rec, **kw) -> None:
        super().__init__(name, rec, **kw)
        self.values = {"cell_voltage_max": 3.9, "pack_voltage": 400.0, "pack_current": 0.0, "soc": 50.0,
                       "imd_enabled": 1.0}

    def signal(self, name: str) -> float:
        return self.values[name]

    async def set_insulation_monitor(self, enabled: bool) -> None:
        self.rec.log(self.name, "set_insulation_monitor", enabled)
        self.values["imd_enabled"] = 1.0 if enabled else 0.0


class FakeSafety(FakeInstrument):
    """Records overlapping use: the engine must never let two fixtures use it at once."""

    def __init__(self, name, rec, **kw) -> None:
        super().__init__(name, rec, **kw)
        self.busy = 0
        self.max_busy = 0

    async def _use(self, seconds: float) -> None:
        self.busy += 1
        self.max_busy = max(self.max_busy, self.busy)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.busy -= 1

    async def insulation(self, voltage, dwell, low_limit, ramp=1.0) -> IrResult:
        self.rec.log(self.name, "insulation", voltage)
        await self._use(dwell)
        return IrResult(5e8, True, 116, ((0.0, 1e8), (dwell, 5e8)))

    async def ground_bond(self, current, dwell, high_limit) -> BondResult:
        self.rec.log(self.name, "ground_bond", current)
        await self._use(dwell)
        return BondResult(0.02, True, 116)

    async def stop(self) -> None:
        pass
