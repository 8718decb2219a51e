"""HV safety surface of the simulated pack: IR settling, IMD, withstand, bonds, HVIL, contactors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.pack import PRESETS, Pack, ir_apparent_resistance
from sim.pack.insulation import apparent_resistance


def make(name: str = "bus-700") -> tuple[Pack, list[float]]:
    now = [0.0]
    return Pack(PRESETS[name], seed=3, clock=lambda: now[0]), now


SOURCE_OHM = 500e3  # a 1000 V IR tester limited to 2 mA


@pytest.mark.parametrize("pole", ["HV+", "HV-"])
def test_ir_reading_settles_with_the_y_cap_time_constant(pole):
    pack, _ = make()
    pack.set_insulation_monitor(False)
    r_iso, c_y, volts = pack.isolation_resistance(pole), pack.y_capacitance(pole), 1000.0
    tau = SOURCE_OHM * c_y
    times = np.array([0.2, 0.5, 1, 2, 3, 5]) * tau
    readings = np.array([ir_apparent_resistance(pack, pole, volts, t, SOURCE_OHM) for t in times])
    assert np.all(np.diff(readings) > 0)  # rises while the Y-cap charges
    # the tester's terminal voltage is R/(Rs+R) of its output: recover it and fit its tau
    v_pole = volts * readings / (SOURCE_OHM + readings)
    v_final = volts * r_iso / (SOURCE_OHM + r_iso)
    fitted = -times / np.log(1.0 - v_pole / v_final)
    np.testing.assert_allclose(fitted, tau, rtol=0.005)
    settled = ir_apparent_resistance(pack, pole, volts, 40 * tau, SOURCE_OHM)
    assert settled == pytest.approx(r_iso, rel=0.005)
    assert settled > 500e6  # a new pack reads hundreds of Mohm
    assert ir_apparent_resistance(pack, pole, volts, 0.0, SOURCE_OHM) == 0.0


def test_enabled_insulation_monitor_pulls_the_reading_down():
    pack, _ = make()
    assert pack.insulation_monitor_enabled
    with_imd = pack.isolation_resistance("HV+")
    assert with_imd < 2e6  # the IMD's own path dominates: a plan that forgets to disable it fails
    assert pack.imd_reading() == pytest.approx(min(pack.isolation.values()))
    pack.set_insulation_monitor(False)
    assert pack.isolation_resistance("HV+") == pack.isolation["HV+"]
    assert pack.imd_reading() is None


def test_low_isolation_fault_and_bad_pole():
    pack, _ = make("car-400")
    pack.set_insulation_monitor(False)
    pack.isolation["HV-"] = 50e3
    assert pack.isolation_resistance("HV-") == 50e3
    assert ir_apparent_resistance(pack, "HV-", 500.0, 10.0, SOURCE_OHM) == pytest.approx(50e3, rel=1e-6)
    with pytest.raises(ValueError, match="HV\\+"):
        pack.isolation_resistance("PE")


def test_withstand_ac_is_capacitive_dc_is_resistive():
    pack, _ = make()
    pack.set_insulation_monitor(False)
    c_total = pack.y_capacitance("HV+") + pack.y_capacitance("HV-")
    r_total = 1 / (1 / pack.isolation["HV+"] + 1 / pack.isolation["HV-"])
    ac, arc = pack.withstand("AC", 1000.0)
    assert not arc and ac == pytest.approx(1000.0 * 2 * math.pi * 50 * c_total, rel=1e-3)
    dc, arc = pack.withstand("DC", 1000.0)
    assert not arc and dc == pytest.approx(1000.0 / r_total, rel=1e-9)
    pack.breakdown_volts = 1500.0
    assert pack.withstand("DC", 1400.0)[1] is False
    leak, arc = pack.withstand("DC", 1600.0)
    assert arc and leak > 1.0
    with pytest.raises(ValueError):
        pack.withstand("RF", 100.0)


def test_apparent_resistance_without_resistive_path_grows_with_time():
    early = apparent_resistance(math.inf, 1e-6, 500.0, 0.1, 1e5)
    late = apparent_resistance(math.inf, 1e-6, 500.0, 1.0, 1e5)
    assert 0 < early < late


def test_bond_points_per_preset():
    bus, _ = make("bus-700")
    car, _ = make("car-400")
    assert len(bus.bond_points) == 6 and len(car.bond_points) == 4
    assert all(0.010 <= bus.bond_resistance(p) <= 0.030 for p in bus.bond_points)
    bus.bond["BP3"] = 0.25  # loose bolt
    assert bus.bond_resistance("BP3") == 0.25
    with pytest.raises(KeyError, match="BP1"):
        car.bond_resistance("BP9")


def test_hvil_break_and_stuck_closed_fault():
    pack, _ = make()
    assert pack.hvil_closed()
    pack.set_hvil_break(True)
    assert not pack.hvil_closed()
    pack.hvil_stuck_closed = True
    assert pack.hvil_closed()
    pack.hvil_stuck_closed = False
    pack.set_hvil_break(False)
    assert pack.hvil_closed()


def test_welded_contactor_stays_closed():
    pack, now = make()
    pack.welded.add("main_plus")
    for name in ("main_minus", "precharge", "main_plus"):
        pack.set_contactor(name, True)
    now[0] = 1.0
    for name in ("main_minus", "precharge", "main_plus"):
        pack.set_contactor(name, False)
    assert pack.contactor_closed("main_plus")
    assert not pack.contactor_closed("main_minus") and not pack.contactor_closed("precharge")
    # with the minus side open the link still bleeds down: the weld shows only in feedback
    now[0] = 60.0
    assert pack.bus_voltage() < 60.0
    with pytest.raises(ValueError, match="main_plus"):
        pack.set_contactor("main", True)


def test_coolant_leak_rate_is_a_fault_attribute():
    pack, _ = make("car-400")
    assert 0 < pack.coolant_leak_rate < 20
    pack.coolant_leak_rate = 250.0
    assert pack.coolant_leak_rate == 250.0
