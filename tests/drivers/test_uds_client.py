"""UdsClient against a scripted ECU: exact request bytes, reply -> result, NRC -> typed error.

The scripted ECU is a CanPort on the station's in-loop bus that checks each single-frame
request against the script and plays back the listed replies (bytes, or a float = pause in s).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import threading

import can
import pytest

from drivers.bms.security import add_rotate_key, xor_key
from drivers.bms.uds_client import UdsClient, nrc_name
from drivers.capabilities import Dtc
from drivers.errors import ConnectError, DeviceError, InstrumentTimeout, ProtocolError, RangeError
from drivers.transports.can import CanPort
from station.clock import run

_channels = itertools.count()
H = bytes.fromhex


class ScriptedEcu:
    def __init__(self, port: CanPort, script) -> None:
        self.port = port
        self.script = list(script)
        self.heard: list[bytes] = []
        self.problems: list[str] = []
        self._answering: set[asyncio.Task] = set()  # the loop keeps only weak references to tasks

    def on_message(self, msg: can.Message) -> None:
        if msg.arbitration_id != 0x7E4:
            return
        data = bytes(msg.data)
        if data[0] >> 4 != 0:
            self.problems.append(f"not a single frame: {data.hex()}")
            return
        payload = data[1 : 1 + data[0]]
        self.heard.append(payload)
        if not self.script:
            self.problems.append(f"extra request {payload.hex(' ')}")
            return
        want, replies = self.script.pop(0)
        if payload != want:
            self.problems.append(f"expected {want.hex(' ')}, got {payload.hex(' ')}")
            return
        task = asyncio.ensure_future(self._answer(replies))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer(self, replies) -> None:
        for reply in replies:
            if isinstance(reply, float):
                await asyncio.sleep(reply)
            else:
                frame = bytes([len(reply)]) + reply
                self.port.send(can.Message(arbitration_id=0x7EC, data=frame.ljust(8, b"\xcc"), is_extended_id=False))

    def assert_done(self) -> None:
        assert self.problems == [] and self.script == []


@contextlib.asynccontextmanager
async def scripted(script, **client_kw):
    resource = f"can://station_loop/uds-client-{next(_channels)}"
    ecu_port, port = CanPort(resource), CanPort(resource)
    await ecu_port.open()
    await port.open()
    ecu = ScriptedEcu(ecu_port, script)
    ecu_port.add_listener(ecu.on_message)
    client = UdsClient(port, **{"timeout": 0.5, **client_kw})
    try:
        async with client:
            yield client, ecu
    finally:
        await port.close()
        await ecu_port.close()


def virtual(body):
    def test() -> None:
        run(body(), virtual=True)

    test.__name__ = body.__name__
    return test


def test_constructor_is_silent():
    threads = threading.active_count()
    client = UdsClient(object(), instrument="bms")  # no bus, no notifier touched
    assert client.session_kind == "default" and client.table[0xF18C].name == "ecu_serial"
    assert threading.active_count() == threads
    with pytest.raises(LookupError, match="valid: add_rotate, xor"):
        UdsClient(object(), key_algorithm="rot13")


@virtual
async def test_eol_sequence_exact_bytes():
    seed = H("11223344")
    script = [
        (H("1003"), [H("5003003201f4")]),
        (H("2701"), [H("6701") + seed]),
        (H("2702") + xor_key(seed, 0x5AC3E1F0), [H("6702")]),
        (H("2ef1a001"), [H("6ef1a0")]),
        (H("2ef1a120261125"), [H("6ef1a1")]),
        (H("14ffffff"), [H("54")]),
        (H("1902ff"), [H("5902ff0a9b1709")]),
        (H("1101"), [H("5101")]),
        (H("22f1a1"), [H("62f1a120261125")]),
    ]
    async with scripted(script) as (client, ecu):
        await client.session("extended")
        await client.unlock()
        await client.write_did("eol_flag", 1)
        await client.write_did(0xF1A1, "2026-11-25")
        await client.clear_dtcs()
        assert await client.read_dtcs() == [Dtc(0x0A9B17, 0x09)]
        await client.ecu_reset()
        assert client.session_kind == "default"
        assert await client.read_did_value("eol_date") == dt.date(2026, 11, 25)
    ecu.assert_done()


@virtual
async def test_negative_responses_name_the_nrc_service_and_did():
    script = [(H("2ef1a001"), [H("7f2e33")]), (H("2701"), [H("7f2737")]), (H("22f18c"), [H("7f2231")])]
    async with scripted(script) as (client, ecu):
        with pytest.raises(DeviceError, match=r"securityAccessDenied \(0x33\) to 0x2E WriteDataByIdentifier, DID 0xf1a0") as info:
            await client.write_did("eol_flag", 1)
        assert info.value.code == 0x33 and info.value.instrument == "bms"
        with pytest.raises(DeviceError, match=r"requiredTimeDelayNotExpired \(0x37\)") as info:
            await client.unlock(1)
        assert info.value.code == 0x37
        with pytest.raises(DeviceError, match=r"requestOutOfRange \(0x31\).*0xf18c"):
            await client.read_did(0xF18C)
    ecu.assert_done()
    assert nrc_name(0x36) == "exceedNumberOfAttempts" and nrc_name(0x99) == "unknownNrc"


@virtual
async def test_bad_values_are_refused_before_any_byte():
    async with scripted([]) as (client, ecu):
        for call, match in [
            (client.write_did("eol_flag", 256), r"\[0, 255\]"),
            (client.write_did("pack_serial", "X" * 21), "longer than 20"),
            (client.write_did("no_such_did", 1), "no DID named"),
            (client.write_did(0xF1A1, "25.11.2026"), "YYYY-MM-DD"),
            (client.read_did(0x10000), "DID"),
            (client.session("sleepy"), "session"),
            (client.unlock(2), "security level 2"),
        ]:
            with pytest.raises(RangeError, match=match):
                await call
    assert ecu.heard == []


@virtual
async def test_silent_ecu_times_out():
    async with scripted([(H("22f18c"), [])], timeout=0.1) as (client, ecu):
        with pytest.raises(InstrumentTimeout, match="0x22 ReadDataByIdentifier, DID 0xf18c"):
            await client.read_did(0xF18C)
    ecu.assert_done()


@virtual
async def test_undecodable_value_is_a_protocol_error():
    async with scripted([(H("22f1a1"), [H("62f1a120261345")])]) as (client, ecu):
        with pytest.raises(ProtocolError, match="month"):
            await client.read_did_value("eol_date")
    ecu.assert_done()


@virtual
async def test_routine_waits_through_response_pending():
    script = [(H("31010203"), [H("7f3178"), 0.15, H("7f3178"), 0.15, H("7101020301")])]
    async with scripted(script, timeout=0.1, p2_star=0.5) as (client, ecu):
        assert await client.routine(0x0203) == b"\x01"
    ecu.assert_done()


@virtual
async def test_keepalive_runs_on_the_loop_clock_only_outside_default():
    script = [(H("1003"), [H("5003003201f4")])] + [(H("3e80"), [])] * 3 + [
        (H("1001"), [H("5001003201f4")])
    ]
    async with scripted(script) as (client, ecu):
        loop = asyncio.get_running_loop()
        await client.session("extended")
        start = loop.time()
        await asyncio.sleep(6.5)  # virtual seconds: 3 tester presents at 2, 4, 6 s
        assert loop.time() - start < 7.0
        await client.session("default")
        await asyncio.sleep(5.0)  # none in the default session
    ecu.assert_done()


@virtual
async def test_key_algorithm_can_be_replaced():
    seed = H("01020304")
    script = [(H("2701"), [H("6701") + seed]), (H("2702") + add_rotate_key(seed, 7, 5), [H("6702")])]
    async with scripted(script, key_algorithm="add_rotate", key_params={"constant": 7, "rotate": 5}) as (client, ecu):
        await client.unlock()
    ecu.assert_done()


@virtual
async def test_failed_keepalive_is_raised_by_the_next_request():
    async with scripted([(H("1003"), [H("5003003201f4")])]) as (client, ecu):
        await client.session("extended")
        client.port.bus.shutdown()  # the CAN interface goes away under the keep-alive
        await asyncio.sleep(2.5)
        with pytest.raises(ConnectError, match=r"CAN send failed during 0x3E TesterPresent.*shut-down"):
            await client.read_did(0xF18C)
        with pytest.raises(ConnectError, match="CAN send failed during 0x22"):  # and it stays failed
            await client.read_did(0xF18C)
    ecu.assert_done()


def test_did_table_errors_point_at_line_and_column():
    from drivers.bms.did_table import DidTableError, parse_did_table

    text = """schema_version: 1
security:
  1: {algorithm: xor, params: {constant: 1}}
dids:
  0xF18C: {name: ecu_serial, length: 4, codec: ascii, default: TOO-LONG}
  0xF1A0: {name: eol_flag, length: 1, codec: int}
  0xF1A1: {name: eol_date, length: 4, codec: bcd-date, security: 2, colour: red}
"""
    with pytest.raises(DidTableError) as info:
        parse_did_table(text, "t.yaml")
    assert info.value.problems == [
        "t.yaml:5:64: default: 'TOO-LONG' is 8 characters, longer than 4",
        "t.yaml:6:46: codec 'int' not one of ascii, uint, hex, bcd-date",
        "t.yaml:7:69: unknown key 'colour' (expected codec, default, description, length, name, security, writable)",
        "t.yaml:7:66: security level 2 is not defined under 'security'",
    ]
    with pytest.raises(DidTableError, match=r"t.yaml:3:3: .*duplicate key"):
        parse_did_table("dids:\n  0x1: {name: a, length: 1, codec: uint}\n  0x1: {name: b, length: 1, codec: uint}\n", "t.yaml")


def test_did_codecs_round_trip_and_refuse():
    from drivers.bms.did_table import DidValueError, load_did_table

    table = load_did_table()
    assert table.resolve("eol_date").encode(dt.date(2026, 11, 25)) == H("20261125")
    assert table.resolve("eol_date").decode(bytes(4)) is None
    assert table.resolve("calibration_checksum").decode(H("3c5a9e01")) == "3C5A9E01"
    assert table.resolve("eol_flag").decode(b"\x07") == 7
    with pytest.raises(DidValueError):
        table.resolve("eol_flag").encode(-1)
    with pytest.raises(DidValueError):
        table.resolve("ecu_serial").decode(b"\xff" * 16)
