"""End to end: the real UDS stack (udsoncan over can-isotp, via UdsClient) against the simulated
ECU's UDS server, over python-can's ``virtual`` bus and over the station's in-loop ``LoopBus``."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import time
import types

import can
import pytest

from drivers.bms.uds_client import UdsClient
from drivers.capabilities import Dtc
from drivers.errors import DeviceError
from drivers.transports.can import CanPort
from sim.bms.ecu import EXTENDED, EcuState
from sim.bms.uds_server import UdsServer
from station.clock import run

_channels = itertools.count()


@contextlib.asynccontextmanager
async def virtual_bus(ecu: EcuState, **server_kw):
    """ECU and client on python-can's virtual bus; yields (frames the ECU heard, client port)."""
    loop = asyncio.get_running_loop()
    channel = f"uds-e2e-{next(_channels)}"
    ecu_bus = can.Bus(interface="virtual", channel=channel)
    client_bus = can.Bus(interface="virtual", channel=channel)
    server, heard = UdsServer(ecu, send=ecu_bus.send, **server_kw), []
    ecu_notifier = can.Notifier(ecu_bus, [server.on_message, heard.append], timeout=0.05, loop=loop)
    port = types.SimpleNamespace(bus=client_bus, notifier=can.Notifier(client_bus, [], timeout=0.05, loop=loop))
    try:
        yield heard, port
    finally:
        server.close()
        for notifier, bus in ((ecu_notifier, ecu_bus), (port.notifier, client_bus)):
            notifier.stop(0.5)
            bus.shutdown()


@contextlib.asynccontextmanager
async def loop_bus(ecu: EcuState, **server_kw):
    """ECU and client as two CanPorts on one station_loop channel (the station's wiring)."""
    resource = f"can://station_loop/uds-e2e-{next(_channels)}"
    ecu_port, client_port = CanPort(resource, instrument="sim-bms"), CanPort(resource, instrument="bms")
    await ecu_port.open()
    await client_port.open()
    server, heard = UdsServer(ecu, send=ecu_port.send, **server_kw), []
    ecu_port.add_listener(server.on_message)
    ecu_port.add_listener(heard.append)
    try:
        yield heard, client_port
    finally:
        server.close()
        await client_port.close()
        await ecu_port.close()


# bus -> (wiring, virtual time?). python-can's virtual bus is read by a Notifier thread, so
# the ECU sees frames only after the loop may have jumped ahead: run it on real time.
BUSES = {"virtual": (virtual_bus, False), "loopbus": (loop_bus, True)}


def on_each_bus(*names: str):
    """Run ``body(bus)`` for each bus (default: all), on its loop, as a sync test."""

    def wrap(body):
        @pytest.mark.parametrize("bus", names or sorted(BUSES))
        def test(bus: str) -> None:
            wiring, virtual = BUSES[bus]
            run(body(wiring), virtual=virtual)

        test.__name__ = body.__name__
        return test

    return wrap


@on_each_bus()
async def test_read_identity(bus):
    ecu = EcuState.from_table(values={"sw_version": "09.99.00"})
    async with bus(ecu) as (_heard, port), UdsClient(port, timeout=1.0) as client:
        assert await client.read_did_value(0xF18C) == "BMS2610010000042"  # 19-byte reply: multi-frame
        assert await client.read_did(0xF195) == b"4.2.1   "
        assert await client.read_did_value("sw_version") == "09.99.00"
        assert await client.read_did_value("manufacturing_date") == dt.date(2026, 10, 1)


@on_each_bus()
async def test_eol_write_reset_read_back(bus):
    ecu = EcuState.from_table()
    async with bus(ecu) as (_heard, port), UdsClient(port, timeout=1.0) as client:
        await client.session("extended")
        await client.unlock(1)
        await client.write_did("eol_flag", 1)
        await client.write_did(0xF1A1, dt.date(2026, 11, 25))
        await client.write_did("pack_serial", "PK-2026-000000000777")  # 23-byte request: multi-frame
        await client.ecu_reset()
        assert ecu.session != EXTENDED and ecu.unlocked_level == 0
        assert await client.read_did_value("eol_flag") == 1
        assert await client.read_did_value("eol_date") == dt.date(2026, 11, 25)
        assert await client.read_did_value("pack_serial") == "PK-2026-000000000777"


@on_each_bus()
async def test_dtcs_read_and_clear(bus):
    ecu = EcuState.from_table(dtcs=[(0x0A9B17, 0x09), (0x0C0100, 0x08)])
    async with bus(ecu) as (_heard, port), UdsClient(port, timeout=1.0) as client:
        assert await client.read_dtcs(0x01) == [Dtc(0x0A9B17, 0x09)]
        assert await client.read_dtcs() == [Dtc(0x0A9B17, 0x09), Dtc(0x0C0100, 0x08)]
        await client.clear_dtcs()
        assert await client.read_dtcs() == []


@on_each_bus()
async def test_routine_with_response_pending(bus):
    ecu = EcuState.from_table()
    ecu.routines[0x0203].delay = 0.3  # held on real time while udsoncan waits: keep it short
    async with bus(ecu, pending_interval=0.1) as (_heard, port), UdsClient(port, timeout=0.2) as client:
        await client.session("extended")
        start = time.monotonic()
        assert await client.routine(0x0203) == b"\x00"  # P2 0.2 s < 0.3 s: only 0x78 keeps it alive
        assert time.monotonic() - start >= 0.3
        assert 0x0203 in ecu.routine_results


@on_each_bus("loopbus")  # 18 s of S3 and keep-alive: virtual time only
async def test_nrc_becomes_typed_error_and_keepalive_holds_the_session(bus):
    ecu = EcuState.from_table()
    async with bus(ecu) as (heard, port), UdsClient(port, timeout=1.0) as client:
        await client.session("extended")
        with pytest.raises(DeviceError, match=r"securityAccessDenied \(0x33\).*0x2E.*0xf1a0") as info:
            await client.write_did("eol_flag", 1)
        assert info.value.code == 0x33 and info.value.instrument == "bms"
        await asyncio.sleep(12.0)  # virtual: S3 is 5 s, the keep-alive (every 2 s) holds it
        assert ecu.session == EXTENDED
        keepalives = [m for m in heard if bytes(m.data[:3]) == b"\x02\x3e\x80"]
        assert 5 <= len(keepalives) <= 6
        await client.session("default")
        await asyncio.sleep(6.0)
        assert [m for m in heard if bytes(m.data[:3]) == b"\x02\x3e\x80"] == keepalives


def test_plain_udsoncan_over_can_isotp():
    """The unwrapped third-party stack, on a real-time loop, as a reference tester."""
    import isotp
    import udsoncan
    from udsoncan.client import Client
    from udsoncan.connections import PythonIsoTpConnection

    async def body():
        async with virtual_bus(EcuState.from_table()) as (_heard, port):
            stack = isotp.NotifierBasedCanStack(
                port.bus, port.notifier, address=isotp.Address(txid=0x7E4, rxid=0x7EC),
                params={"stmin": 0, "blocksize": 0},
            )
            config = dict(udsoncan.configs.default_client_config)
            config["data_identifiers"] = {0xF18C: udsoncan.AsciiCodec(16), 0xF195: udsoncan.AsciiCodec(8)}
            config["p2_timeout"] = 1.0

            def talk():
                with Client(PythonIsoTpConnection(stack), config=config) as client:
                    client.change_session(3)
                    values = client.read_data_by_identifier([0xF18C, 0xF195]).service_data.values
                    client.tester_present()
                    return values

            return await asyncio.get_running_loop().run_in_executor(None, talk)

    values = run(body())
    assert values == {0xF18C: "BMS2610010000042", 0xF195: "4.2.1   "}
