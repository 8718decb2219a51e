"""Fuzz the drivers' reply parsing with random replies: a result or an ``InstrumentError``
subclass naming the instrument — never a bare ValueError/IndexError/struct.error, never a hang.

Drivers run on virtual time against fake transports that answer every query with the next
drawn reply (plausible tokens mixed with random text), so polling loops end by their own
timeouts in virtual seconds.
"""

from __future__ import annotations

import asyncio
import math
import struct
from types import SimpleNamespace

import pytest
from hypothesis import given, strategies as st

from drivers.bms.live_values import LiveValues
from drivers.bms.modbus_bms import load_bms_map
from drivers.bms.signals import load_signal_map
from drivers.cycler.itech_it6000 import ItechIT6000
from drivers.cycler.modbus_cycler import ModbusCycler
from drivers.dmm.keysight_34465a import Keysight34465A
from drivers.errors import InstrumentError
from drivers.fixture.modbus_fixture import ModbusFixture
from drivers.leak.ateq import AteqLeakTester, parse_result
from drivers.maps.regmap import load_map
from drivers.safety.chroma_19032 import Chroma19032
from station.clock import run

from .bounds import fuzz

TOKENS = ['+0,"No error"', '-221,"Settings conflict"', "0", "1", "116", "112", "115", "999999", "-1", "RUNNING",
          "STOPPED", "running", "+5.230000E+08", "+4.01234567E+02", "9.9E+37", "nan", "NaN", "inf", "-inf", "1e999",
          "", " ", ",,,", "ITECH Ltd., IT6015C-80-450, 1, 2", "Chroma ATE,19032,1,2", "Keysight Technologies,34465A,a,b",
          "ON", "OFF", "2067", "4294967296", "1" * 400, "\x00", "\udcff", "é", "+0,", '"', "1,2,3", "ON;OFF"]
REPLY = st.sampled_from(TOKENS) | st.text(max_size=30)


class RandomReplies:
    """A message transport: writes are accepted, each query/read_line returns the next drawn reply."""

    def __init__(self, data, resource: str = "fuzz://") -> None:
        self.data = data
        self.resource = resource
        self.queries = 0

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def write(self, command: str) -> None:
        await asyncio.sleep(0)

    async def query(self, command: str, timeout: float | None = None) -> str:
        self.queries += 1
        assert self.queries < 5000, f"driver keeps querying ({command!r})"
        await asyncio.sleep(0.001)
        return self.data.draw(REPLY, label=command)

    async def read_line(self, timeout: float | None = None) -> str:
        return await self.query("<read>")


SCPI_CALLS = {
    "cycler": (ItechIT6000, [
        lambda d: d.identify(), lambda d: d.set_output(True), lambda d: d.set_voltage(400.0),
        lambda d: d.set_current(-100.0), lambda d: d.measure(), lambda d: d.protection(),
        lambda d: d.output_on(), lambda d: d.safe_state(), lambda d: d.open(),
    ]),
    "dmm": (Keysight34465A, [
        lambda d: d.identify(), lambda d: d.measure_dc_voltage(1000, 10), lambda d: d.measure_dc_voltage(None, 1),
        lambda d: d.open(),
    ]),
    "safety": (Chroma19032, [
        lambda d: d.identify(), lambda d: d.insulation(500, 2, 1e6), lambda d: d.withstand("DC", 1000, 1, 0.001),
        lambda d: d.ground_bond(25, 2, 0.1), lambda d: d.safe_state(), lambda d: d.open(),
    ]),
    "leak": (AteqLeakTester, [lambda d: d.test(timeout=30), lambda d: d.identify(), lambda d: d.safe_state()]),
}


async def _call(driver, call) -> object:
    try:
        return await asyncio.wait_for(call(driver), 3600)  # virtual seconds: a loop must end by itself
    except InstrumentError as err:
        assert driver.name in str(err), f"error does not name the instrument: {err}"
        return err


def _finite(result: object) -> None:
    """Numbers a driver returns are real numbers (a garbage reply must not become a NaN reading)."""
    values = [result] if isinstance(result, float) else [getattr(result, f) for f in getattr(result, "_fields", ())]
    values += [getattr(result, f) for f in getattr(result, "__dataclass_fields__", {})]
    for value in values:
        if isinstance(value, float) and not (isinstance(result, object) and getattr(result, "status", "") == "AL"):
            assert math.isfinite(value), f"{result!r} holds a non-finite number"


@pytest.mark.parametrize("role", sorted(SCPI_CALLS))
def test_scpi_and_line_drivers_on_random_replies(role):
    cls, calls = SCPI_CALLS[role]

    @fuzz(150)
    @given(st.data(), st.lists(st.sampled_from(range(len(calls))), min_size=1, max_size=4))
    def check(data, picks):
        async def main():
            driver = cls(role, "TCPIP::192.0.2.1::5025::SOCKET", transport=RandomReplies(data))
            for i in picks:
                result = await _call(driver, calls[i])
                if not isinstance(result, InstrumentError):
                    _finite(result)

        run(main(), virtual=True)

    check()


@pytest.mark.parametrize("reply", ["inf", "1e999", "-inf"])
def test_itech_protection_word_inf_is_a_protocol_error(reply):
    class Fixed(RandomReplies):
        async def query(self, command, timeout=None):
            return reply

    async def main():
        return await _call(ItechIT6000("cycler", "TCPIP::192.0.2.1::5025::SOCKET", transport=Fixed(None)),
                           lambda d: d.protection())

    assert isinstance(run(main(), virtual=True), InstrumentError)


def test_itech_protection_word_garbage_is_a_protocol_error():
    class Fixed(RandomReplies):
        async def query(self, command, timeout=None):
            return "nan"

    async def main():
        return await _call(ItechIT6000("cycler", "TCPIP::192.0.2.1::5025::SOCKET", transport=Fixed(None)),
                           lambda d: d.protection())

    assert isinstance(run(main(), virtual=True), InstrumentError)


@fuzz(800)
@given(st.sampled_from(["<01>:(OK): 027 Pa", "(TD): -3 hPa", "<99>:AL: x", "ER: busy", "<1>:(OK): 1 Pa", ""])
       .flatmap(lambda base: st.tuples(st.just(base), st.text(max_size=6), st.integers(0, 30)))
       .map(lambda t: t[0][: t[2]] + t[1] + t[0][t[2]:]) | st.text(max_size=60))
def test_ateq_line_parser(line):
    try:
        result = parse_result(line, instrument="leak")
    except InstrumentError as err:
        assert "leak" in str(err)
        return
    assert result.status in ("OK", "TD", "RD", "AL")
    assert result.status == "AL" or math.isfinite(result.pressure)


class RandomRegisters:
    """A Modbus transport: reads return drawn raw words/bits of the requested count; writes pass."""

    def __init__(self, data) -> None:
        self.data = data
        self.resource = "fuzz-modbus://"

    async def open(self) -> None: ...
    async def close(self) -> None: ...

    async def _words(self, address: int, count: int) -> list[int]:
        return self.data.draw(st.lists(st.integers(0, 0xFFFF), min_size=count, max_size=count), label=f"@{address}")

    async def _bits(self, address: int, count: int) -> list[bool]:
        return self.data.draw(st.lists(st.booleans(), min_size=count, max_size=count), label=f"@{address}")

    read_holding = read_input = _words
    read_coils = read_discrete_inputs = _bits

    async def write_coil(self, *a) -> None: ...
    async def write_coils(self, *a) -> None: ...
    async def write_register(self, *a) -> None: ...
    async def write_registers(self, *a) -> None: ...


@pytest.mark.parametrize("name", ["modbus_cycler.yaml", "modbus_bms.yaml", "fixture_plc.yaml"])
def test_register_decoding_never_raises(name):
    fields = (load_bms_map(name) if "bms" in name else load_map(name)).fields

    @fuzz(100)
    @given(st.data())
    def check(data):
        for f in fields:
            seed = data.draw(st.lists(st.booleans() if f.type == "bool" else st.integers(0, 0xFFFF),
                                      min_size=1, max_size=8))
            raw = (seed * f.count)[: f.count]  # long arrays (all cells) repeat a drawn pattern
            value = f.decode(raw)
            for item in value if isinstance(value, list) else [value]:
                assert isinstance(item, (bool, int, float, str))
            if f.bits:
                assert f.flags(int(value)) <= {n for _b, n in f.bits}

    check()


MODBUS_CALLS = {
    "cycler": (ModbusCycler, [lambda d: d.measure(), lambda d: d.protection(), lambda d: d.heartbeat(),
                              lambda d: d.identify(), lambda d: d.safe_state()]),
    "fixture": (ModbusFixture, [lambda d: d.read_inputs(), lambda d: d.read_outputs(), lambda d: d.contact_cycles(),
                                lambda d: d.identify(), lambda d: d.safe_state()]),
}


@pytest.mark.parametrize("role", sorted(MODBUS_CALLS))
def test_modbus_drivers_on_random_registers(role):
    cls, calls = MODBUS_CALLS[role]

    @fuzz(150)
    @given(st.data(), st.lists(st.sampled_from(range(len(calls))), min_size=1, max_size=3))
    def check(data, picks):
        async def main():
            driver = cls(role, "modbus-tcp://127.0.0.1:1502?unit=1", transport=RandomRegisters(data))
            for i in picks:
                await _call(driver, calls[i])

        run(main(), virtual=True)

    check()


def test_modbus_cycler_measure_refuses_non_finite_registers():
    nan = list(struct.unpack(">HH", struct.pack(">f", math.nan)))

    class NanRegisters(RandomRegisters):
        async def _words(self, address, count):
            return (nan * count)[:count]

        read_holding = read_input = _words

    async def main():
        driver = ModbusCycler("cycler", "modbus-tcp://127.0.0.1:1502?unit=1", transport=NanRegisters(None))
        return await _call(driver, lambda d: d.measure())

    result = run(main(), virtual=True)
    assert isinstance(result, InstrumentError), result


LIVE_MAP = load_signal_map(cells=96, temperature_sensors=24)
LIVE_IDS = sorted(LiveValues(LIVE_MAP, clock=lambda: 0.0)._handlers)


SHARED_LIVE = LiveValues(LIVE_MAP, clock=lambda: 1.0, instrument="bms")
PLAIN_IDS = [i for i in LIVE_IDS if LiveValues(LIVE_MAP, clock=lambda: 0.0)._handlers[i].mux is None]


@fuzz(2000)
@given(st.sampled_from(PLAIN_IDS) | st.integers(0, 0x7FF).filter(lambda i: i not in LIVE_IDS),
       st.binary(min_size=8, max_size=8))
def test_live_values_foreign_ids_and_full_plain_frames(arb, data):
    """Unmapped ids are ignored; full-length frames of plain (not multiplexed) messages always decode."""
    live = SHARED_LIVE
    live.update(SimpleNamespace(arbitration_id=arb, data=data))


@fuzz(300)
@given(st.sampled_from(LIVE_IDS), st.binary(max_size=8))
def test_live_values_any_frame_never_raises_foreign_errors(arb, data):
    live = SHARED_LIVE
    try:
        live.update(SimpleNamespace(arbitration_id=arb, data=data))
    except InstrumentError:
        pass
