"""Exact register-level exchanges of the Modbus fixture driver (no network)."""

from __future__ import annotations

import datetime as dt

import pytest

from drivers.capabilities import Fixture, SafeAction, StateFinding
from drivers.errors import DeviceError, InstrumentTimeout, RangeError
from drivers.fixture.modbus_fixture import ModbusFixture
from drivers.maps.regmap import MapError
from drivers.testing.modbus import ExpectedRegisters
from drivers.transports.modbus import ModbusTransport

RESOURCE = "modbus-tcp://127.0.0.1:1502?unit=1"


def make(ops, **kw) -> tuple[ModbusFixture, ExpectedRegisters]:
    t = ExpectedRegisters(ops)
    return ModbusFixture("fixture", RESOURCE, transport=t, **kw), t


def test_constructor_is_silent_and_implements_fixture():
    f, t = make([])
    assert isinstance(f, Fixture)
    t.assert_done()
    assert not t.opened


async def test_set_output_writes_the_mapped_coil():
    f, t = make([("write_coil", 0, True), ("write_coil", 3, False)])
    async with t:
        await f.set_output("clamp", True)
        await f.set_output("ir_hv_minus", False)


async def test_unknown_output_lists_valid_names_and_sends_nothing():
    f, t = make([])
    with pytest.raises(RangeError) as err:
        await f.set_output("clmap", True)
    assert "clmap" in str(err.value) and "clamp, lv_power, ir_hv_plus" in str(err.value)
    assert "fixture" in str(err.value)
    with pytest.raises(RangeError):
        await f.set_output("clamp", 1)  # not a bool: refused, not coerced
    t.assert_done()


async def test_read_inputs_and_outputs_by_name():
    f, t = make([
        ("read_discrete_inputs", 0, 4, [True, True, False, True]),
        ("read_coils", 0, 6, [True, False, True, False, False, True]),
    ])
    async with t:
        assert await f.read_inputs() == {
            "estop_released": True, "guard_closed": True, "pack_present": False, "clamp_closed": True}
        assert await f.read_outputs() == {
            "clamp": True, "lv_power": False, "ir_hv_plus": True, "ir_hv_minus": False,
            "hvil_break": False, "guard_lock": True}


async def test_bond_point_selector_range_checked_before_sending():
    f, t = make([("write_register", 0, 3), ("write_register", 0, 0)])
    async with t:
        await f.select_bond_point(3)
        for bad in (33, -1, 2.0, True):
            with pytest.raises(RangeError):
                await f.select_bond_point(bad)
        await f.select_bond_point(0)


async def test_device_exception_reaches_the_caller_typed():
    refused = DeviceError("write_coil at address 3 answered Modbus exception 3 ILLEGAL_DATA_VALUE", code=3)
    f, t = make([("write_coil", 3, True, refused)])
    with pytest.raises(DeviceError) as err:
        await f.set_output("ir_hv_minus", True)
    assert err.value.code == 3
    t.assert_done()


async def test_safe_state_releases_ir_relays_hvil_and_bond_point_only():
    f, t = make([
        ("write_coil", 2, False), ("write_coil", 3, False), ("write_coil", 4, False),
        ("write_register", 0, 0),
    ])
    async with t:
        done = await f.safe_state()
    assert done == [SafeAction(f"{what} (acknowledged)", True)
                    for what in ("ir_hv_plus off", "ir_hv_minus off", "hvil_break off", "bond_point 0 (none)")]


async def test_energy_state_reads_relays_lv_power_and_estop():
    f, t = make([("read_coils", 0, 6, [True, True, True, False, False, False]),
                 ("read_discrete_inputs", 0, 4, [False, True, True, True])])
    found = {x.what: x for x in await f.energy_state()}
    assert found["ir_hv_plus"] == StateFinding("ir_hv_plus", False, "IR/hipot relay to HV+ CLOSED (ir_hv_plus on)")
    assert found["ir_hv_minus"].safe and found["hvil_break"].safe
    # LV power on is not safe and left on: the start-up check switches it off once all else reads safe
    assert found["lv_power"] == StateFinding("lv_power", False, "LV power to the pack on (lv_power on)",
                                             left_on=("lv_power",))
    assert found["estop"] == StateFinding("estop", True, "e-stop pressed; release it before a run")
    t.assert_done()


async def test_safe_state_tries_everything_then_names_each_failure():
    lost = InstrumentTimeout("no reply within 2 s")
    f, t = make([
        ("write_coil", 2, False, lost), ("write_coil", 3, False), ("write_coil", 4, False, lost),
        ("write_register", 0, 0),
    ])
    with pytest.raises(InstrumentTimeout) as err:
        await f.safe_state()
    t.assert_done()  # the failures did not stop the other actions
    msg = str(err.value)
    assert "ir_hv_plus off failed" in msg and "hvil_break off failed" in msg
    assert "done: ir_hv_minus off, bond_point 0 (none)" in msg


async def test_identify_reads_serial_and_firmware_registers():
    due = dt.date(2027, 3, 1)
    f, t = make([("read_input", 0, 3, [0x000A, 0xD5F1, 0x0102])], calibration_due=due,
                options={"maker": "Acme", "model": "FX-2"})
    async with t:
        ident = await f.identify()
    assert (ident.maker, ident.model, ident.serial, ident.firmware) == ("Acme", "FX-2", "710129", "1.2")
    assert ident.calibration_due == due


async def test_identify_from_options_sends_nothing_and_contact_cycles():
    f, t = make([("read_input", 3, 2, [0, 1234])],
                options={"serial_number": "FX-9", "firmware_version": "3.1"})
    async with t:
        ident = await f.identify()
        assert await f.contact_cycles() == 1234
    assert (ident.serial, ident.firmware) == ("FX-9", "3.1")


async def test_site_map_option_moves_the_addresses(tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text(
        "name: site\nregisters:\n"
        "  - {name: clamp, table: coil, address: 100}\n"
        "  - {name: ir_hv_plus, table: coil, address: 110}\n")
    f, t = make([("write_coil", 100, True), ("write_coil", 110, False)], options={"map": str(site)})
    async with t:
        await f.set_output("clamp", True)
        assert await f.safe_state() == [SafeAction("ir_hv_plus off (acknowledged)", True)]


def test_bad_map_fails_at_construction_with_position(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nregisters:\n  - {name: clamp, table: coil, adress: 1}\n")
    with pytest.raises(MapError) as err:
        ModbusFixture("fixture", RESOURCE, options={"map": str(bad)})
    assert f"{bad}:3:" in str(err.value) and "adress" in str(err.value)


def test_input_poll_only_over_a_transport_that_reads_from_callbacks(tmp_path):
    f, t = make([])
    assert f.input_poll() is None  # the exact-exchange fake: read_inputs, awaited
    tcp = ModbusFixture("fixture", RESOURCE)
    tcp.transport = ModbusTransport(RESOURCE, instrument="fixture")  # built, not opened: no I/O
    assert tcp.input_poll() is not None and tcp.input_poll() is not tcp.input_poll()  # one per watcher
    rtu = ModbusFixture("fixture", "modbus-rtu:///dev/ttyUSB0?unit=1")
    rtu.transport = ModbusTransport(rtu.resource, instrument="fixture")
    assert rtu.input_poll() is None
    split = tmp_path / "split.yaml"
    split.write_text("name: split\nregisters:\n  - {name: estop_released, table: discrete, address: 0}\n"
                     "  - {name: guard_closed, table: discrete, address: 4}\n")
    gaps = ModbusFixture("fixture", RESOURCE, options={"map": str(split)})
    gaps.transport = ModbusTransport(RESOURCE, instrument="fixture")
    assert gaps.input_poll() is None  # two requests: read_inputs does it
    t.assert_done()
