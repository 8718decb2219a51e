"""The pack reuses its last evaluation to start the next step only while the state is unchanged."""

from __future__ import annotations

import pytest

from sim.pack.model import Pack
from sim.pack.presets import PRESETS


def _loaded(now: list[float]) -> Pack:
    pack = Pack(PRESETS["car-400"], seed=4, clock=lambda: now[0])
    for name in ("main_minus", "main_plus"):
        pack.set_contactor(name, True)
    # CV-limited discharge: the step's current depends on both R0 and the EMF
    pack.set_source(True, 354.0, -200.0, 300.0, 300.0)
    return pack


def _state(pack: Pack) -> tuple[bytes, ...]:
    return (pack.element_soc.tobytes(), pack.v1.tobytes(), pack.temperature.tobytes())


@pytest.mark.parametrize("fault", ["r0_factor", "temperature", "element_soc"])
def test_a_fault_written_in_place_after_a_scan_applies_from_the_last_integration(fault):
    t_a, t_b = [0.0], [0.0]
    scanned, plain = _loaded(t_a), _loaded(t_b)
    for t in (0.12, 0.24, 0.36):
        t_a[0] = t_b[0] = t
        scanned.snapshot()  # evaluates the end state: the next step may start from it
        plain.advance()  # the same step boundaries, no evaluation kept
    assert _state(scanned) == _state(plain)
    assert -200.0 < scanned.pack_current() < -10.0  # CV-limited, not the CC setpoint
    for pack in (scanned, plain):  # as sim/faults.py writes: in place, no advance()
        getattr(pack, fault)[3] += {"r0_factor": 3.0, "temperature": 15.0, "element_soc": -0.05}[fault]
    t_a[0] = t_b[0] = 5.0
    scanned.advance()
    plain.advance()
    assert _state(scanned) == _state(plain)
    a, b = scanned.snapshot(), plain.snapshot()
    assert a.cell_voltages.tobytes() == b.cell_voltages.tobytes() and a.pack_current == b.pack_current


def test_an_unchanged_state_gives_the_same_step_as_a_fresh_evaluation():
    t_a, t_b = [0.0], [0.0]
    scanned, plain = _loaded(t_a), _loaded(t_b)
    for step in range(1, 40):
        t_a[0] = t_b[0] = 0.12 * step
        scanned.snapshot()
        plain.advance()
    assert _state(scanned) == _state(plain)
    assert scanned.snapshot().pack_voltage == plain.snapshot().pack_voltage
