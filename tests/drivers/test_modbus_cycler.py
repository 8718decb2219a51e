"""Exact register-level exchanges of the Modbus cycler driver (no network)."""

from __future__ import annotations

import struct

import pytest

from drivers.capabilities import Cycler, CyclerReading, SafeAction, StateFinding
from drivers.cycler.modbus_cycler import ModbusCycler
from drivers.errors import ConnectError, DeviceError, RangeError
from drivers.maps.regmap import MapError
from drivers.testing.modbus import ExpectedRegisters

RESOURCE = "modbus-tcp://127.0.0.1:1502"


def f32(x: float) -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", x))
    return [hi, lo]


def make(ops, **kw) -> tuple[ModbusCycler, ExpectedRegisters]:
    t = ExpectedRegisters(ops)
    return ModbusCycler("cycler", RESOURCE, transport=t, **kw), t


def test_constructor_is_silent_and_implements_cycler():
    c, t = make([])
    assert isinstance(c, Cycler)
    t.assert_done()


async def test_setpoints_are_float32_high_word_first():
    c, t = make([
        ("write_registers", 0, f32(401.5)),
        ("write_registers", 2, f32(-200.0)),
        ("write_registers", 4, f32(100.0) + f32(150.0)),  # both limits in one request
        ("write_registers", 12, [50]),  # watchdog 5.0 s at 0.1 s resolution
        ("write_coil", 0, True),
    ])
    async with t:
        await c.set_voltage(401.5)
        await c.set_current(-200.0)
        await c.set_current_limits(100.0, 150.0)
        await c.set_watchdog(5.0)
        await c.set_output(True)


async def test_out_of_range_refused_before_any_write():
    c, t = make([])
    for call in (lambda: c.set_voltage(1200.0), lambda: c.set_voltage(float("nan")),
                 lambda: c.set_current(-601.0), lambda: c.set_current_limits(100.0, -5.0),
                 lambda: c.set_current_limits(700.0, 5.0), lambda: c.set_watchdog(61.0),
                 lambda: c.set_output(1)):
        with pytest.raises(RangeError) as err:
            await call()
        assert "cycler" in str(err.value)
    t.assert_done()


async def test_site_rating_narrows_the_map_ranges():
    c, t = make([("write_registers", 2, f32(-300.0))], options={"voltage_max": 500, "current_max": 300})
    with pytest.raises(RangeError) as err:
        await c.set_voltage(600.0)
    assert "[0, 500] V" in str(err.value)
    with pytest.raises(RangeError):
        await c.set_current(-300.5)
    await c.set_current(-300.0)
    t.assert_done()


async def test_measure_reads_v_i_p_ah_in_one_request():
    c, t = make([("read_input", 0, 8, f32(398.5) + f32(-20.0) + f32(-7970.0) + f32(0.25))])
    async with t:
        assert await c.measure() == CyclerReading(398.5, -20.0, -7970.0, 0.25)


async def test_protection_word_bits_and_clear():
    c, t = make([
        ("read_input", 8, 1, [0b1101]),
        ("write_coil", 1, True),
        ("read_input", 8, 1, [0]),
        ("write_coil", 2, True),
        ("read_input", 9, 1, [77]),
    ])
    async with t:
        assert await c.protection() == frozenset({"OVP", "OTP", "WDT"})
        await c.clear_protection()
        assert await c.protection() == frozenset()
        await c.reset_counters()
        assert await c.heartbeat() == 77


async def test_device_exception_keeps_its_code():
    exc = DeviceError("write_registers at address 0 answered Modbus exception 3 ILLEGAL_DATA_VALUE", code=3)
    c, _t = make([("write_registers", 0, f32(10.0), exc)])
    with pytest.raises(DeviceError) as err:
        await c.set_voltage(10.0)
    assert err.value.code == 3


async def test_safe_state_output_off_then_current_zero_then_read_back():
    c, t = make([("write_coil", 0, False), ("write_registers", 2, [0, 0]), ("read_discrete_inputs", 0, 1, [False])])
    async with t:
        assert await c.safe_state() == [SafeAction("output off (read back off)", True),
                                        SafeAction("current setpoint 0 A (write acknowledged)", True)]
    t.assert_done()


async def test_safe_state_output_read_back_on_is_not_confirmed():
    c, t = make([("write_coil", 0, False), ("write_registers", 2, [0, 0]), ("read_discrete_inputs", 0, 1, [True])])
    assert (await c.safe_state())[0] == SafeAction("output off (read back: STILL ON)", False)
    t.assert_done()


async def test_open_arms_the_watchdog_from_the_option():
    c, t = make([("write_registers", 12, [50])])
    await c.open()
    t.assert_done()
    c, t = make([("write_registers", 12, [25])], options={"watchdog": 2.5})
    await c.open()
    t.assert_done()
    c, t = make([], options={"watchdog": 0})
    await c.open()
    t.assert_done()


def test_a_watchdog_outside_the_map_range_is_refused_at_construction():
    with pytest.raises(RangeError, match="option watchdog"):
        make([], options={"watchdog": 100})


async def test_energy_state_reports_output_current_and_latched_trips():
    c, t = make([("read_discrete_inputs", 0, 1, [True]),
                 ("read_input", 0, 8, f32(288.0) + f32(12.0) + f32(3456.0) + f32(0.5)),
                 ("read_input", 8, 1, [0b1001])])
    found = await c.energy_state()
    assert found == [StateFinding("output", False, "output ON (output_on read back)"),
                     StateFinding("current", False, "12.00 A at 288.0 V on the terminals"),
                     StateFinding("protection", False, "latched protection OVP/WDT", latched=("OVP", "WDT"))]
    t.assert_done()


async def test_safe_state_still_zeroes_current_when_output_off_fails():
    c, t = make([("write_coil", 0, False, ConnectError("connection lost")), ("write_registers", 2, [0, 0])])
    with pytest.raises(ConnectError) as err:
        await c.safe_state()
    t.assert_done()
    assert "output off failed" in str(err.value) and "done: current setpoint 0 A" in str(err.value)


async def test_identify():
    c, t = make([("read_input", 10, 3, [0x0007, 0xEF41, 0x0103])], options={"maker": "Acme"})
    async with t:
        ident = await c.identify()
    assert (ident.maker, ident.model, ident.serial, ident.firmware) == ("Acme", "Modbus pack cycler", "520001", "1.3")


def test_site_map_missing_a_needed_field_fails_at_construction(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("name: site\nregisters:\n  - {name: output_enable, table: coil, address: 0}\n")
    with pytest.raises(MapError) as err:
        ModbusCycler("cycler", RESOURCE, options={"map": str(site)})
    assert "voltage_setpoint (holding)" in str(err.value) and "measured_ah (input)" in str(err.value)
