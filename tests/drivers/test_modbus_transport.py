"""ModbusTransport: resource parsing, and typed errors against a real pymodbus server on loopback."""

from __future__ import annotations

import asyncio
import socket

import pytest

from drivers.errors import ConnectError, DeviceError, InstrumentTimeout, RangeError
from drivers.maps.regmap import load_map
from drivers.transports.modbus import ModbusEndpoint, ModbusTransport, parse_resource
from sim.instruments.modbus_server import MapServer
from station.clock import run


def test_parse_tcp_and_rtu_resources():
    assert parse_resource("modbus-tcp://10.0.0.7:502") == ModbusEndpoint("tcp", "10.0.0.7", 502, unit=1)
    assert parse_resource("modbus-tcp://127.0.0.1:1502?unit=7").unit == 7
    rtu = parse_resource("modbus-rtu:///dev/ttyUSB0?baud=115200&parity=e&unit=3")
    assert (rtu.port, rtu.baud, rtu.parity, rtu.unit) == ("/dev/ttyUSB0", 115200, "E", 3)
    assert (rtu.bytesize, rtu.stopbits) == (8, 1)
    assert parse_resource("modbus-rtu://socket://127.0.0.1:5020?baud=9600").port == "socket://127.0.0.1:5020"


@pytest.mark.parametrize("bad, why", [
    ("tcp://1.2.3.4:502", "expected modbus-tcp"),
    ("modbus-tcp://1.2.3.4", "HOST:PORT"),
    ("modbus-tcp://1.2.3.4:502?slave=1", "unknown option(s) slave"),
    ("modbus-tcp://1.2.3.4:502?unit=300", "unit must be"),
    ("modbus-rtu:///dev/ttyS0?baud=fast", "integers"),
    ("modbus-rtu://?baud=9600", "missing serial device"),
])
def test_bad_resources_are_connect_errors_naming_the_problem(bad, why):
    with pytest.raises(ConnectError) as err:
        parse_resource(bad, "plc")
    assert why in str(err.value) and "plc" in str(err.value)


def serve(body, *, timeout: float = 0.5, rtu: bool = False):
    """Run ``body(server, transport)`` with a fixture-map server on loopback, on virtual time."""

    async def main():
        server = MapServer(load_map("fixture_plc.yaml"))
        addr = await server.start(rtu=rtu)
        scheme = f"modbus-rtu://socket://{addr}?baud=115200" if rtu else f"modbus-tcp://{addr}"
        t = ModbusTransport(scheme, timeout=timeout, instrument="plc")
        await t.open()
        try:
            return await body(server, t)
        finally:
            await t.close()
            await server.stop()

    return run(main(), virtual=True)


def test_constructor_does_not_connect():
    t = ModbusTransport("modbus-tcp://127.0.0.1:1", timeout=0.1)
    assert t._link is None and t._serial is None  # nothing opened until open()

    async def use_unopened():
        with pytest.raises(ConnectError):
            await t.read_coils(0, 1)

    run(use_unopened(), virtual=True)


@pytest.mark.parametrize("rtu", [False, True])
def test_round_trip_coils_and_registers(rtu):
    async def body(server, t):
        await t.write_coils(0, [True, False, True])
        await t.write_register(0, 5)
        await t.write_registers(0, [7])
        server.values["serial_number"] = 0x12345678
        return await t.read_coils(0, 3), await t.read_holding(0, 1), await t.read_input(0, 2), server.values["clamp"]

    assert serve(body, rtu=rtu) == ([True, False, True], [7], [0x1234, 0x5678], True)


def test_exception_response_is_device_error_with_code_and_name():
    async def body(server, t):
        with pytest.raises(DeviceError) as bad_addr:
            await t.read_holding(9, 1)
        with pytest.raises(DeviceError) as bad_value:
            await t.write_register(0, 999)
        return bad_addr.value, bad_value.value

    addr, value = serve(body)
    assert addr.code == 2 and "ILLEGAL_DATA_ADDRESS" in str(addr) and "read_holding at address 9" in str(addr)
    assert addr.instrument == "plc" and addr.command == "read_holding(9, 1)"
    assert value.code == 3 and "ILLEGAL_DATA_VALUE" in str(value)


def test_no_reply_is_instrument_timeout_within_the_timeout():
    async def body(server, t):
        server.behaviour = "hang"
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises(InstrumentTimeout) as err:
            await t.read_coils(0, 1)
        return loop.time() - t0, err.value

    elapsed, err = serve(body, timeout=0.5)
    assert 0.5 <= elapsed < 0.6
    assert "read_coils(0, 1)" in str(err)


def test_server_stopped_is_connect_error_or_timeout_within_the_timeout():
    async def body(server, t):
        await t.read_coils(0, 1)
        await server.stop()
        await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        with pytest.raises((ConnectError, InstrumentTimeout)):
            await t.read_coils(0, 1)
        return loop.time() - t0

    assert serve(body, timeout=0.5) <= 0.6


def test_unreachable_port_is_connect_error():
    with socket.socket() as s:  # a port that was free a moment ago: nobody listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def main():
        t = ModbusTransport(f"modbus-tcp://127.0.0.1:{port}", timeout=0.5, instrument="plc")
        with pytest.raises(ConnectError) as err:
            await t.open()
        return err.value

    err = run(main(), virtual=True)
    assert "plc" in str(err) and str(port) in str(err)


def test_frames_no_modbus_pdu_can_carry_are_refused_before_sending():
    async def body(server, t):
        before = server.requests
        for call in (lambda: t.write_register(0, 70000), lambda: t.read_holding(0, 126),
                     lambda: t.write_registers(0, []), lambda: t.read_coils(65535, 2)):
            with pytest.raises(RangeError):
                await call()
        return server.requests - before

    assert serve(body) == 0
