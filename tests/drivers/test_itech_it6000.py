"""Exact-exchange tests of the ITECH IT6000C driver: every method's bytes, in order."""

from __future__ import annotations

import datetime as dt

import pytest

from drivers.capabilities import Cycler, CyclerReading, Identity, SafeAction, StateFinding
from drivers.cycler.itech_it6000 import ItechIT6000
from drivers.errors import ConnectError, DeviceError, InstrumentTimeout, ProtocolError, RangeError
from drivers.testing.message import ExpectedMessages

OK = ("SYST:ERR?", '+0,"No error"')


def cycler(pairs, **kw) -> tuple[ItechIT6000, ExpectedMessages]:
    fake = ExpectedMessages(pairs)
    return ItechIT6000("cycler", "TCPIP::192.0.2.1::30000::SOCKET", transport=fake, **kw), fake


def test_constructor_is_silent():
    drv, fake = cycler([], calibration_due=dt.date(2027, 1, 31))
    fake.assert_done()
    assert isinstance(drv, Cycler)


async def test_open_clears_error_queue_arms_the_watchdog_and_close():
    drv, fake = cycler([("*CLS", None), ("SYST:WDOG 5", None), OK])
    async with drv:
        assert fake.opened
    assert not fake.opened
    fake.assert_done()


async def test_watchdog_option_sets_the_timeout_or_leaves_it_alone():
    drv, fake = cycler([("*CLS", None), ("SYST:WDOG 2.5", None), OK], options={"watchdog": 2.5})
    await drv.open()
    fake.assert_done()
    drv, fake = cycler([("*CLS", None)], options={"watchdog": 0})
    await drv.open()
    fake.assert_done()
    drv, fake = cycler([("*CLS", None), ("SYST:COMM:WDOG 3", None), OK],
                       options={"watchdog": 3, "watchdog_command": "SYST:COMM:WDOG {}"})
    await drv.open()
    fake.assert_done()


async def test_an_instrument_without_the_watchdog_command_fails_open_naming_it():
    drv, fake = cycler([("*CLS", None), ("SYST:WDOG 5", None), ("SYST:ERR?", '-113,"Undefined header"')])
    with pytest.raises(DeviceError, match="-113") as info:
        await drv.open()
    assert info.value.command == "SYST:WDOG 5"
    fake.assert_done()


@pytest.mark.parametrize("options", [{"watchdog": -1}, {"watchdog": 4000}, {"watchdog_command": "SYST:WDOG"}])
def test_bad_watchdog_options_are_refused_at_construction(options):
    with pytest.raises(RangeError, match="cycler"):
        cycler([], options=options)


async def test_identify_with_calibration_due():
    due = dt.date(2027, 3, 1)
    drv, fake = cycler([("*IDN?", "ITECH Ltd., IT6015C-80-450, 800999000111, 1.06-1.04")], calibration_due=due)
    assert await drv.identify() == Identity("ITECH Ltd.", "IT6015C-80-450", "800999000111", "1.06-1.04", due)
    fake.assert_done()


async def test_identify_malformed_is_protocol_error():
    drv, _ = cycler([("*IDN?", "ITECH IT6015C")])
    with pytest.raises(ProtocolError, match=r"cycler: .*\*IDN\?"):
        await drv.identify()


@pytest.mark.parametrize("on, command", [(True, "OUTP ON"), (False, "OUTP OFF")])
async def test_set_output(on, command):
    drv, fake = cycler([(command, None), OK])
    await drv.set_output(on)
    fake.assert_done()


async def test_setpoints_each_followed_by_one_error_check():
    drv, fake = cycler([
        ("VOLT 403.2", None), OK,
        ("CURR -150", None), OK,
        ("CURR:LIM 200", None), OK,
        ("CURR:LIM:NEG -250.5", None), OK,
        ("SENS:AH:RES", None), OK,
        ("PROT:CLE", None), OK,
    ])
    await drv.set_voltage(403.2)
    await drv.set_current(-150)
    await drv.set_current_limits(200, 250.5)
    await drv.reset_counters()
    await drv.clear_protection()
    fake.assert_done()


@pytest.mark.parametrize(
    "call",
    [
        lambda d: d.set_voltage(4000),
        lambda d: d.set_voltage(-1),
        lambda d: d.set_current(451),
        lambda d: d.set_current(-451),
        lambda d: d.set_current(float("nan")),
        lambda d: d.set_current_limits(100, -5),  # magnitudes only
        lambda d: d.set_current_limits(500, 10),
    ],
)
async def test_out_of_range_sends_nothing(call):
    drv, fake = cycler([])
    with pytest.raises(RangeError, match="cycler"):
        await call(drv)
    fake.assert_done()


async def test_ranges_come_from_options():
    drv, fake = cycler([("VOLT 80", None), OK], options={"v_max": 80, "i_charge_max": 100})
    await drv.set_voltage(80)
    with pytest.raises(RangeError, match=r"80\.5 V outside \[0, 80\] V"):
        await drv.set_voltage(80.5)
    with pytest.raises(RangeError):
        await drv.set_current(101)
    fake.assert_done()


async def test_device_error_names_the_command():
    drv, fake = cycler([("OUTP ON", None), ("SYST:ERR?", '-221,"Settings conflict"')])
    with pytest.raises(DeviceError, match=r"Settings conflict.*'OUTP ON'") as info:
        await drv.set_output(True)
    assert info.value.code == -221 and info.value.command == "OUTP ON" and info.value.instrument == "cycler"
    fake.assert_done()


async def test_unparsable_error_queue_is_protocol_error():
    drv, _ = cycler([("VOLT 10", None), ("SYST:ERR?", "what")])
    with pytest.raises(ProtocolError, match="VOLT 10"):
        await drv.set_voltage(10)


async def test_measure():
    drv, fake = cycler([
        ("MEAS:VOLT?;:MEAS:CURR?;:FETC:POW?;:FETC:AH?", "+3.876543E+02;-1.000000E+02;-3.876543E+04;+1.250000E+00"),
    ])
    assert await drv.measure() == CyclerReading(387.6543, -100.0, -38765.43, 1.25)
    fake.assert_done()


@pytest.mark.parametrize("reply", ["\x15#?garbage", "nan;1;2;3", "", "1;2;3"])
async def test_measure_garbage_is_protocol_error_naming_command(reply):
    drv, _ = cycler([("MEAS:VOLT?;:MEAS:CURR?;:FETC:POW?;:FETC:AH?", reply)])
    with pytest.raises(ProtocolError, match=r"MEAS:VOLT\?"):
        await drv.measure()


async def test_measure_and_protection_is_one_compound_query():
    drv, fake = cycler([
        ("MEAS:VOLT?;:MEAS:CURR?;:FETC:POW?;:FETC:AH?;:STAT:QUES:COND?", "+3.9E+02;+2.0E+01;+7.8E+03;+5.0E-01;2048"),
    ])
    assert await drv.measure_and_protection() == (CyclerReading(390.0, 20.0, 7800.0, 0.5), frozenset({"WDT"}))
    fake.assert_done()


@pytest.mark.parametrize("reply", ["1;2;3;4", "1;2;3;4;x", "1;2;nan;4;0", "1;2;3;4;0;9"])
async def test_measure_and_protection_garbage_is_protocol_error_naming_command(reply):
    drv, _ = cycler([("MEAS:VOLT?;:MEAS:CURR?;:FETC:POW?;:FETC:AH?;:STAT:QUES:COND?", reply)])
    with pytest.raises(ProtocolError, match=r"STAT:QUES:COND\?"):
        await drv.measure_and_protection()


@pytest.mark.parametrize(
    "word, trips",
    [("0", set()), ("1", {"OVP"}), ("2", {"OCP"}), ("16", {"OTP"}), ("2048", {"WDT"}), ("2067", {"OVP", "OCP", "OTP", "WDT"}), ("4", {"BIT2"})],
)
async def test_protection_bits(word, trips):
    drv, fake = cycler([("STAT:QUES:COND?", word)])
    assert await drv.protection() == frozenset(trips)
    fake.assert_done()


@pytest.mark.parametrize("reply, state", [("1", True), ("0", False), ("ON", True)])
async def test_output_query(reply, state):
    drv, fake = cycler([("OUTP?", reply)])
    assert await drv.output_on() is state
    fake.assert_done()


async def test_safe_state_is_idempotent_and_confirms_by_read_back():
    drv, fake = cycler([("OUTP OFF", None), OK, ("CURR 0", None), OK, ("OUTP?", "0")] * 2)
    first = await drv.safe_state()
    assert first == [SafeAction("output off (OUTP? 0)", True),
                     SafeAction("current setpoint 0 A (CURR 0, no error)", True)]
    assert await drv.safe_state() == first
    fake.assert_done()


async def test_safe_state_output_still_on_after_off_is_not_confirmed():
    drv, fake = cycler([("OUTP OFF", None), OK, ("CURR 0", None), OK, ("OUTP?", "1")])
    done = await drv.safe_state()
    assert done[0] == SafeAction("output off (OUTP? 1: STILL ON)", False)
    fake.assert_done()


async def test_safe_state_without_a_read_back_is_not_confirmed_and_raises():
    timeout = InstrumentTimeout("no reply", instrument="cycler", command="OUTP?")
    drv, fake = cycler([("OUTP OFF", None), OK, ("CURR 0", None), OK, ("OUTP?", timeout)])
    with pytest.raises(InstrumentTimeout):
        await drv.safe_state()
    fake.assert_done()


async def test_energy_state_reads_output_current_and_latches():
    drv, fake = cycler([("OUTP?", "1"),
                        ("MEAS:VOLT?;:MEAS:CURR?;:FETC:POW?;:FETC:AH?;:STAT:QUES:COND?", "288.1;12.5;3601;0.1;2049")])
    found = await drv.energy_state()
    assert found == [
        StateFinding("output", False, "output ON (OUTP? 1)"),
        StateFinding("current", False, "12.50 A at 288.1 V on the terminals"),
        StateFinding("protection", False, "latched protection OVP/WDT", latched=("OVP", "WDT")),
    ]
    fake.assert_done()


async def test_energy_state_of_an_idle_source_is_safe():
    drv, fake = cycler([("OUTP?", "0"),
                        ("MEAS:VOLT?;:MEAS:CURR?;:FETC:POW?;:FETC:AH?;:STAT:QUES:COND?", "288.1;0;0;0.1;0")])
    found = await drv.energy_state()
    assert all(f.safe for f in found) and found[-1] == StateFinding("protection", True, "no protection latched")
    fake.assert_done()


async def test_safe_state_tries_everything_then_raises_first_error():
    timeout = InstrumentTimeout("no reply", instrument="cycler", command="SYST:ERR?")
    drv, fake = cycler([("OUTP OFF", None), ("SYST:ERR?", timeout), ("CURR 0", None), OK])
    with pytest.raises(InstrumentTimeout, match=r"checking the error queue") as info:
        await drv.safe_state()
    assert info.value.command == "OUTP OFF"  # the setting, not just the SYST:ERR? that hung
    fake.assert_done()


async def test_not_open_is_connect_error():
    drv = ItechIT6000("cycler", "TCPIP::192.0.2.1::30000::SOCKET")
    with pytest.raises(ConnectError, match="cycler"):
        await drv.measure()
