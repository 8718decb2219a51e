"""Exact-exchange tests of the Keysight 34465A driver."""

from __future__ import annotations

import datetime as dt

import pytest

from drivers.capabilities import Dmm, Identity
from drivers.dmm.keysight_34465a import Keysight34465A
from drivers.errors import DeviceError, ProtocolError, RangeError
from drivers.testing.message import ExpectedMessages

OK = ("SYST:ERR?", '+0,"No error"')


class TimedMessages(ExpectedMessages):
    """Also records the timeout each query was given."""

    def __init__(self, pairs):
        super().__init__(pairs)
        self.timeouts: list[float | None] = []

    async def query(self, command, timeout=None):
        self.timeouts.append(timeout)
        return await super().query(command, timeout)


def dmm(pairs, **kw) -> tuple[Keysight34465A, TimedMessages]:
    fake = TimedMessages(pairs)
    return Keysight34465A("dmm", "TCPIP::192.0.2.2::5025::SOCKET", transport=fake, **kw), fake


def test_constructor_is_silent():
    drv, fake = dmm([])
    fake.assert_done()
    assert isinstance(drv, Dmm)


async def test_identify():
    due = dt.date(2026, 12, 24)
    drv, fake = dmm([("*IDN?", "Keysight Technologies,34465A,MY59001234,A.03.01")], calibration_due=due)
    assert await drv.identify() == Identity("Keysight Technologies", "34465A", "MY59001234", "A.03.01", due)
    fake.assert_done()


async def test_first_reading_configures_then_repeats_only_read():
    drv, fake = dmm([
        ("*CLS", None),
        ("CONF:VOLT:DC 1000", None), OK,  # NPLC 10 is what CONF leaves: not sent
        ("READ?", "+4.01234567E+02"),
        ("READ?", "+4.01234500E+02"),
    ])
    await drv.open()
    assert await drv.measure_dc_voltage(1000, nplc=10) == pytest.approx(401.234567)
    assert await drv.measure_dc_voltage(1000, nplc=10) == pytest.approx(401.2345)
    fake.assert_done()


async def test_nplc_and_range_changes_are_sent_once():
    drv, fake = dmm([
        ("CONF:VOLT:DC 100", None), OK,
        ("VOLT:DC:NPLC 1", None), OK,
        ("READ?", "+5.00000000E+01"),
        ("VOLT:DC:NPLC 0.02", None), OK,
        ("READ?", "+5.00000000E+01"),
        ("CONF:VOLT:DC 0.1", None), OK,  # CONF resets NPLC to 10, so 0.02 is sent again
        ("VOLT:DC:NPLC 0.02", None), OK,
        ("READ?", "+1.00000000E-02"),
        ("CONF:VOLT:DC AUTO", None), OK,
        ("READ?", "+1.00000000E-02"),
    ])
    await drv.measure_dc_voltage(100, nplc=1)
    await drv.measure_dc_voltage(100, nplc=0.02)
    await drv.measure_dc_voltage(0.1, nplc=0.02)
    assert await drv.measure_dc_voltage(None) == pytest.approx(0.01)
    fake.assert_done()


async def test_read_timeout_covers_integration():
    drv, fake = dmm([("CONF:VOLT:DC 10", None), OK, ("VOLT:DC:NPLC 100", None), OK, ("READ?", "+1.0E+00")], timeout=1.5)
    await drv.measure_dc_voltage(10, nplc=100)
    assert fake.timeouts[-1] >= 1.5 + 100 * 0.020


@pytest.mark.parametrize("range_v, nplc", [(2.0, 10), (10000, 10), (1000, 0.01), (1000, 101), (1000, float("nan"))])
async def test_out_of_range_sends_nothing(range_v, nplc):
    drv, fake = dmm([])
    with pytest.raises(RangeError, match="dmm"):
        await drv.measure_dc_voltage(range_v, nplc=nplc)
    fake.assert_done()


async def test_device_error_names_the_command_and_forgets_the_state():
    drv, fake = dmm([
        ("CONF:VOLT:DC 1000", None), ("SYST:ERR?", '-222,"Data out of range"'),
        ("CONF:VOLT:DC 1000", None), OK,  # retried: the failed CONF was not cached
        ("READ?", "+1.0E+00"),
    ])
    with pytest.raises(DeviceError, match=r"Data out of range.*'CONF:VOLT:DC 1000'") as info:
        await drv.measure_dc_voltage(1000)
    assert info.value.code == -222
    await drv.measure_dc_voltage(1000)
    fake.assert_done()


async def test_overload_is_device_error():
    drv, _ = dmm([("CONF:VOLT:DC 10", None), OK, ("READ?", "+9.90000000E+37")])
    with pytest.raises(DeviceError, match=r"overload.*READ\?"):
        await drv.measure_dc_voltage(10)


async def test_garbage_reading_is_protocol_error():
    drv, _ = dmm([("CONF:VOLT:DC 10", None), OK, ("READ?", "\x15#?garbage@")])
    with pytest.raises(ProtocolError, match=r"READ\?"):
        await drv.measure_dc_voltage(10)


async def test_safe_state_touches_nothing():
    drv, fake = dmm([])
    lines = await drv.safe_state()
    assert lines == await drv.safe_state() and "nothing to switch off" in lines[0].action
    fake.assert_done()


@pytest.mark.parametrize("reading, safe", [("+2.5E+00", True), ("+2.881E+02", False), ("-6.1E+01", False)])
async def test_energy_state_reads_the_bus_on_the_1000_v_range(reading, safe):
    drv, fake = dmm([("CONF:VOLT:DC 1000", None), OK, ("VOLT:DC:NPLC 1", None), OK, ("READ?", reading)])
    (finding,) = await drv.energy_state()
    assert finding.what == "bus voltage" and finding.safe is safe
    fake.assert_done()


async def test_a_reading_just_below_zero_prints_as_zero_not_minus_zero():
    # a discharged bus reads microvolts either side of zero: "bus -0.0 V" reads as a fault
    drv, fake = dmm([("CONF:VOLT:DC 1000", None), OK, ("VOLT:DC:NPLC 1", None), OK, ("READ?", "-4.2E-05")])
    (finding,) = await drv.energy_state()
    assert finding.safe and finding.detail == "bus 0.0 V (< 60 V)"
    fake.assert_done()
