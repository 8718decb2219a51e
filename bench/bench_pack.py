"""Cost of the pack model as the simulated instruments call it: ``python bench/bench_pack.py``."""

from __future__ import annotations

import time

from sim.pack import PRESETS, Pack


def bench(name: str, calls: int = 10_000) -> None:
    now = [0.0]
    pack = Pack(PRESETS[name], clock=lambda: now[0])
    pack.set_contactor("main_minus", True)
    pack.set_contactor("main_plus", True)
    pack.set_source(True, 1e4, 50.0, 100.0, 100.0)
    cases = {
        "advance, 10 ms elapsed": lambda: (now.__setitem__(0, now[0] + 0.01), pack.advance()),
        "advance, no time elapsed": pack.advance,
        "source_reading, 10 ms": lambda: (now.__setitem__(0, now[0] + 0.01), pack.source_reading()),
        "cell_voltages, no time": pack.cell_voltages,
    }
    for label, call in cases.items():
        start = time.perf_counter()
        for _ in range(calls):
            call()
        per_call = (time.perf_counter() - start) / calls
        print(f"{name:8s} {label:26s} {per_call * 1e6:8.2f} us/call  ({calls:,} calls)")


if __name__ == "__main__":
    for preset in PRESETS:
        bench(preset)
