"""Presets, OCV tables, cell spread, balancing and the per-element fault attributes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from sim.pack import PRESETS, Pack, PackSpec, ocv
from sim.pack.ocv import OCV_TABLES, ocv_slope


def make(name: str, seed: int = 0) -> tuple[Pack, list[float]]:
    now = [0.0]
    return Pack(PRESETS[name], seed=seed, clock=lambda: now[0]), now


def test_presets_are_realistic_products():
    bus, car = PRESETS["bus-700"], PRESETS["car-400"]
    assert bus.chemistry == "LFP" and car.chemistry == "NMC"
    assert 680 <= bus.nominal_voltage <= 700 and 190 <= bus.energy_kwh <= 210
    assert 345 <= car.nominal_voltage <= 365 and 70 <= car.energy_kwh <= 80
    for spec in (bus, car):
        assert spec.isolation_plus > 100e6 and spec.isolation_minus > 100e6
        assert 0.1e-6 <= spec.y_cap_plus <= 1e-6
        assert 0.05 <= spec.precharge_ohm * spec.link_capacitance <= 0.2
        assert spec.bms_sw_version and spec.bms_hw_version and spec.part_number
        assert spec.initial_soc == 0.5 and spec.ambient_c == 25.0


def test_spec_is_frozen_and_checked():
    spec = PRESETS["car-400"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.series = 10  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.bond_points["BP1"] = 1.0  # type: ignore[index]
    with pytest.raises(ValueError, match="LFP"):
        dataclasses.replace(spec, chemistry="LTO", ocv=None)  # no table of its own, none built in


@pytest.mark.parametrize("chem, low, high", [("LFP", 2.5, 3.65), ("NMC", 3.0, 4.2)])
def test_ocv_tables_span_the_chemistry_and_increase(chem, low, high):
    assert ocv(chem, 0.0) == pytest.approx(low)
    assert ocv(chem, 1.0) == pytest.approx(high)
    xs, ys = OCV_TABLES[chem]
    assert np.all(np.diff(xs) > 0) and np.all(np.diff(ys) > 0)
    assert ocv_slope(chem, 0.5) == pytest.approx((ocv(chem, 0.55) - ocv(chem, 0.5)) / 0.05)


def test_lfp_plateau_is_flat():
    plateau = ocv("LFP", np.linspace(0.2, 0.9, 15))
    assert plateau.min() >= 3.2 and plateau.max() <= 3.35


def test_seeded_spread_is_reproducible_and_small():
    a, _ = make("bus-700", seed=5)
    b, _ = make("bus-700", seed=5)
    c, _ = make("bus-700", seed=6)
    np.testing.assert_array_equal(a.cell_voltages(), b.cell_voltages())
    assert not np.array_equal(a.cell_voltages(), c.cell_voltages())
    spread = a.capacity_ah / a.capacity_ah.mean() - 1
    assert 0.001 < spread.std() < 0.004
    car, _ = make("car-400")
    mv = car.cell_voltages() * 1000
    assert 0.5 < mv.std() < 10 and mv.max() - mv.min() < 30  # a good pack passes a 30 mV spread
    assert car.pack_voltage() == pytest.approx(car.cell_voltages().sum())


def test_weak_cell_drops_more_under_load():
    pack, now = make("car-400")
    pack.r0_factor[10] = 4.0
    pack.set_contactor("main_minus", True)
    pack.set_contactor("main_plus", True)
    rest = pack.cell_voltages()
    pack.set_source(True, 0.0, -200.0, 300.0, 300.0)
    now[0] = 0.5
    drop = rest - pack.cell_voltages()
    others = np.delete(drop, 10)
    assert drop[10] > 2.5 * others.mean()


def test_soc_offset_fault_shows_in_cell_voltage():
    pack, _ = make("car-400")
    before = pack.cell_voltages()[3]
    pack.offset_soc(3, -0.10)
    assert pack.cell_socs()[3] == pytest.approx(pack.spec.initial_soc - 0.10, abs=0.02)
    assert before - pack.cell_voltages()[3] > 0.03


def test_sensor_faults_are_plain_attributes():
    pack, _ = make("bus-700")
    temps = pack.cell_temperatures()
    assert temps.shape == (48,) and np.allclose(temps, 25.0)
    pack.hot_cell[7] = 30.0
    assert pack.cell_temperatures()[7] == pytest.approx(55.0)
    pack.open_tap.add(100)
    pack.dead_sensor.add(2)
    assert pack.cell_voltages()[100] > 3.0  # physics is unaffected: the BMS sim reads the fault


def test_balancing_bleeds_cells_above_the_minimum():
    pack, now = make("car-400")
    pack.offset_soc(5, -0.02)  # the weakest element
    assert not pack.balancing_flags().any()
    pack.set_balancing(True)
    flags = pack.balancing_flags()
    assert not flags[5] and flags.sum() == pack.spec.series - 1
    soc0 = pack.cell_socs()
    now[0] = 3600.0
    drop = soc0 - pack.cell_socs()
    bled = pack.spec.balance_current / pack.capacity_ah  # SOC per hour
    assert drop[5] == pytest.approx(0.0, abs=1e-12)
    np.testing.assert_allclose(np.delete(drop, 5), np.delete(bled, 5), rtol=1e-6)
    pack.set_balancing(False)
    assert not pack.balancing_flags().any()


def test_no_event_loop_needed_with_a_clock_and_lazy_start():
    now = [100.0]
    spec = dataclasses.replace(PRESETS["car-400"], name="tiny", series=4, temp_sensors=2)
    pack = Pack(spec, clock=lambda: now[0])
    assert isinstance(spec, PackSpec) and pack.cell_voltages().shape == (4,)
    now[0] = 5000.0  # a long idle jump costs little and changes nothing at rest
    assert pack.soc() == pytest.approx(pack.cell_socs().mean())
    assert pack.rng.normal() != pack.rng.normal()
