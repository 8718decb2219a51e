"""Pack physics against closed-form answers: Thevenin pulse, coulomb counting, CV, precharge."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time

import numpy as np
import pytest

from sim.pack import PRESETS, Pack, PackSpec
from sim.pack.ocv import ocv
from station import clock as station_clock


class FakeClock:
    """A settable clock: ``pack = Pack(spec, clock=fake)``; ``fake.t = 12.5``."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def make(spec: PackSpec, **overrides) -> tuple[Pack, FakeClock]:
    fake = FakeClock()
    pack = Pack(dataclasses.replace(spec, **overrides), seed=7, clock=fake)
    return pack, fake


def connect(pack: Pack) -> None:
    pack.set_contactor("main_minus", True)
    pack.set_contactor("main_plus", True)


ONE_CELL = dataclasses.replace(PRESETS["bus-700"], name="one", series=1, parallel=1, temp_sensors=1)

PULSE_A, PULSE_END, REST_END = -200.0, 20.0, 40.0
SAMPLES = (0.5, 3.0, 10.0, 19.99, 20.5, 25.0, 33.0, 40.0)


def run_pulse(spec: PackSpec, amps: float, dt: float) -> tuple[Pack, np.ndarray, dict[float, float]]:
    """Pulse ``amps`` for PULSE_END s, then rest; sample the pack voltage; steps of ``dt`` s."""
    pack, fake = make(spec, r0_temp_coeff=0.0)  # isolate the electrical response
    connect(pack)
    soc0 = pack.cell_socs()
    pack.set_source(True, 0.0 if amps < 0 else 1e4, amps, 1000.0, 1000.0)  # CV never engages
    grid = np.unique(np.concatenate([np.arange(0.0, REST_END, dt), SAMPLES, [PULSE_END, REST_END]]))
    seen = {}
    for t in grid:
        fake.t = float(t)
        if t == PULSE_END:
            pack.set_source(False, 0.0, 0.0, 0.0, 0.0)
        if t in SAMPLES:
            seen[float(t)] = pack.pack_voltage()
        else:
            pack.advance()
    return pack, soc0, seen


def thevenin(pack: Pack, soc0: np.ndarray, amps: float, t: float) -> float:
    """Closed-form pack voltage: OCV(counted SOC) + I*R0 + RC pair, summed over elements."""
    tau, r1 = pack.tau1, pack.r1
    on = min(t, PULSE_END)
    soc = soc0 + amps * on / 3600.0 / pack.capacity_ah
    v1_end = amps * r1 * (1.0 - math.exp(-on / tau))
    if t <= PULSE_END:
        over = amps * pack.r0_base + v1_end
    else:
        over = v1_end * math.exp(-(t - PULSE_END) / tau)
    return float((ocv(pack.spec.chemistry, soc) + over).sum())


@pytest.mark.parametrize("spec", [ONE_CELL, PRESETS["bus-700"], PRESETS["car-400"]], ids=lambda s: s.name)
def test_pulse_matches_thevenin_closed_form_at_any_step(spec):
    amps = PULSE_A if spec.series > 1 else -50.0
    answers = {}
    for dt in (1e-3, 0.37, 10.0):
        pack, soc0, seen = run_pulse(spec, amps, dt)
        for t, volts in seen.items():
            expected = thevenin(pack, soc0, amps, t)
            # judge the dynamic part (V - OCV), the part a wrong integrator would get wrong
            rest = float(ocv(spec.chemistry, soc0 + amps * min(t, PULSE_END) / 3600 / pack.capacity_ah).sum())
            assert volts - rest == pytest.approx(expected - rest, rel=0.005), (dt, t)
        answers[dt] = seen
    for t in SAMPLES:
        assert answers[1e-3][t] == pytest.approx(answers[10.0][t], rel=1e-9, abs=1e-9)
        assert answers[0.37][t] == pytest.approx(answers[10.0][t], rel=1e-9, abs=1e-9)


def test_pulse_shows_r0_step_then_rc_relaxation():
    pack, soc0, seen = run_pulse(PRESETS["bus-700"], PULSE_A, 0.37)
    ocv0 = float(ocv("LFP", soc0).sum())
    r0 = float(pack.r0_base.sum())
    # the instant step is I*R0; the RC pair adds more as the pulse goes on, then relaxes
    assert ocv0 - seen[0.5] == pytest.approx(-PULSE_A * r0, rel=0.05)
    assert seen[19.99] < seen[10.0] < seen[0.5]
    assert seen[20.5] < seen[25.0] < seen[40.0]


def test_coulomb_counting_closes_over_a_cc_cv_charge():
    pack, fake = make(PRESETS["car-400"])
    connect(pack)
    soc0 = pack.cell_socs()
    limit = 4.1 * pack.spec.series
    pack.set_source(True, limit, 150.0, 200.0, 200.0)
    for _ in range(180):
        fake.t += 20.0
        pack.source_reading()
    ah = pack.source_reading()[2]
    counted = (pack.cell_socs() - soc0) * pack.capacity_ah
    assert ah > 80.0
    np.testing.assert_allclose(counted, ah, rtol=1e-3)
    pack.reset_ah()
    assert pack.source_reading()[2] == 0.0


@pytest.mark.parametrize("charging", [True, False])
def test_cv_never_crosses_the_limit_and_current_tapers(charging):
    pack, fake = make(PRESETS["car-400"], initial_soc=0.85 if charging else 0.15)
    connect(pack)
    rest = pack.pack_voltage()
    limit = rest + 10.0 if charging else rest - 10.0
    pack.set_source(True, limit, 150.0 if charging else -150.0, 200.0, 200.0)
    rng = np.random.default_rng(1)
    volts, amps = [], []
    for _ in range(600):
        fake.t += float(rng.choice([0.01, 0.3, 2.0, 7.0]))
        v, a, _ah = pack.source_reading()
        volts.append(v)
        amps.append(abs(a))
    volts, amps = np.array(volts), np.array(amps)
    if charging:
        assert volts.max() <= limit + 1e-6
    else:
        assert volts.min() >= limit - 1e-6
    cv = np.abs(volts - limit) < 1e-6
    assert amps[0] == pytest.approx(150.0) and not cv[0]  # starts in CC
    assert cv.sum() > 100  # the CV phase was reached
    assert amps[cv][-1] < 0.5 * amps[cv][0] < 150.0
    assert np.all(np.diff(amps[cv]) <= 1e-6)  # tapers monotonically


def test_precharge_follows_tau():
    pack, fake = make(PRESETS["bus-700"])
    v_pack = pack.pack_voltage()
    pack.set_contactor("main_minus", True)
    pack.set_contactor("precharge", True)
    tau = pack.precharge_ohm * pack.link_capacitance
    assert tau == pytest.approx(0.150)
    fake.t = tau
    assert pack.bus_voltage() / v_pack == pytest.approx(1 - math.exp(-1), rel=0.005)
    assert pack.pack_current() < 0  # the pack feeds the link
    fake.t = 3 * tau
    assert pack.bus_voltage() / v_pack == pytest.approx(0.950, abs=0.003)


def test_slow_precharge_fault_and_bleed_down():
    pack, fake = make(PRESETS["bus-700"])
    pack.precharge_ohm *= 4
    v_pack = pack.pack_voltage()
    pack.set_contactor("main_minus", True)
    pack.set_contactor("precharge", True)
    fake.t = 3 * 0.150
    assert pack.bus_voltage() / v_pack < 0.55  # a 3-tau precharge timeout would trip
    fake.t = 5.0
    pack.set_contactor("main_plus", True)
    pack.set_contactor("precharge", False)
    assert pack.bus_voltage() == pytest.approx(v_pack, rel=1e-3)
    pack.set_contactor("main_plus", False)
    pack.set_contactor("main_minus", False)
    v0 = pack.bus_voltage()
    tau = pack.bleed_ohm * pack.link_capacitance
    fake.t += tau
    assert pack.bus_voltage() == pytest.approx(v0 * math.exp(-1), rel=1e-6)
    fake.t += 30.0
    assert pack.bus_voltage() < 60.0


def test_disconnected_source_drives_the_link_only():
    pack, fake = make(PRESETS["car-400"])
    soc0 = pack.soc()
    pack.set_source(True, 300.0, 10.0, 20.0, 20.0)
    fake.t = 1.0
    v, a, _ah = pack.source_reading()
    assert v == pytest.approx(300.0, rel=1e-6)
    assert a == pytest.approx(300.0 / pack.bleed_ohm, rel=1e-3)  # only the bleed draws
    assert pack.pack_current() == 0.0 and pack.soc() == soc0


def test_temperature_rises_under_load_and_cools_toward_ambient():
    pack, fake = make(PRESETS["car-400"])
    connect(pack)
    pack.set_source(True, 0.0, -300.0, 400.0, 400.0)
    fake.t = 600.0
    hot = pack.cell_temperatures()
    assert hot.min() > 26.0
    pack.set_source(False, 0.0, 0.0, 0.0, 0.0)
    fake.t = 600.0 + 4 * 3600.0
    assert np.all(pack.cell_temperatures() < hot)
    assert pack.cell_temperatures().max() < 25.0 + 0.2 * (hot.max() - 25.0)


def test_cold_pack_has_higher_r0():
    pack, _fake = make(PRESETS["bus-700"])
    warm = pack._r0().sum()
    pack.temperature[:] = 0.0
    assert pack._r0().sum() == pytest.approx(warm * math.exp(0.03 * 25), rel=1e-9)


def test_default_clock_is_the_running_virtual_loop():
    async def scenario():
        pack = Pack(PRESETS["bus-700"])
        v_pack = pack.pack_voltage()
        pack.set_contactor("main_minus", True)
        pack.set_contactor("precharge", True)
        await asyncio.sleep(0.150)
        return pack.bus_voltage() / v_pack

    assert station_clock.run(scenario(), virtual=True) == pytest.approx(0.632, abs=0.003)


def test_cost_of_advances(capsys):
    pack, fake = make(PRESETS["bus-700"])
    connect(pack)
    pack.set_source(True, 800.0, 50.0, 100.0, 100.0)
    start = time.perf_counter()
    for _ in range(10_000):
        fake.t += 0.01
        pack.advance()
    stepped = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(10_000):
        pack.advance()
    idle = time.perf_counter() - start
    with capsys.disabled():
        print(f"\nbus-700: 10,000 advances of 10 ms {stepped * 1e3:.1f} ms; 10,000 idle {idle * 1e3:.2f} ms")
    assert fake.t == pytest.approx(100.0)
    assert pack.soc() > pack.spec.initial_soc  # the advances did integrate
