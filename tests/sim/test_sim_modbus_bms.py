"""SimModbusBms on the wire: raw RTU frames on a pty and a socket:// link, and Modbus TCP.

RTU requests are literal bytes; replies are checked byte for byte where the value is fixed by
the pack preset (cell and sensor counts), else by function code and length.

The pty tests run on real time: the kernel hands pty bytes to the other side from a work
queue, so right after a write the far end may not be readable yet and a virtual-time loop
would jump ahead. The socket:// link (loopback TCP, delivered synchronously) runs on virtual
time, which is what makes the sub-millisecond silence test exact.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from drivers.errors import DeviceError, InstrumentTimeout
from drivers.transports.modbus import ModbusTransport
from drivers.transports.rtu_link import frame, parse_frame, t15, t35
from sim.bms.modbus_bms import SimModbusBms
from sim.pack.model import Pack
from sim.pack.presets import PRESETS
from sim.wiring import Wiring
from station.clock import run

READ_COUNTS = bytes.fromhex("01 04 00 16 00 02 90 0F")  # unit 1, FC4, input 22..23 (cell/sensor counts)
COUNTS_CAR = bytes.fromhex("01 04 04 00 60 00 18 FB 90")  # 96 cells, 24 sensors


class PtyClient:
    """The master's end of the pty null modem, read by the event loop."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.received = bytearray()
        asyncio.get_running_loop().add_reader(self.fd, self._read)

    def _read(self) -> None:
        self.received += os.read(self.fd, 1024)

    async def send(self, data: bytes, *, expect: int = 0) -> bytes:
        """Write ``data``; wait for ``expect`` bytes (up to 1 s), or 0.1 s when none are expected."""
        self.received.clear()
        os.write(self.fd, data)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (1.0 if expect else 0.1)
        while loop.time() < deadline and (not expect or len(self.received) < expect):
            await asyncio.sleep(0.005)
        return bytes(self.received)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.fd)
        os.close(self.fd)


def on_pty(body, *, preset: str = "car-400", lv_power: bool = True):
    """``body(sim, client)`` against an RTU BMS on a pty, on real time (see the docstring)."""

    async def main():
        sim = SimModbusBms(Pack(PRESETS[preset]), Wiring(lv_power=lv_power))
        path = await sim.start_rtu("pty")
        client = PtyClient(path)
        try:
            return await body(sim, client)
        finally:
            client.close()
            await sim.stop()

    return run(main(), virtual=False)


def test_rtu_read_answers_the_exact_frame():
    async def body(sim, client):
        return await client.send(READ_COUNTS, expect=9), sim.gateways[0].answered

    assert on_pty(body) == (COUNTS_CAR, 1)


def test_a_bad_crc_gets_no_answer_and_the_bus_recovers():
    async def body(sim, client):
        corrupt = await client.send(READ_COUNTS[:-1] + b"\x00")
        good = await client.send(READ_COUNTS, expect=9)
        return corrupt, good, sim.gateways[0].bad_crc

    assert on_pty(body) == (b"", COUNTS_CAR, 1)


def test_other_unit_ids_are_ignored_and_a_broadcast_write_is_executed_unanswered():
    async def body(sim, client):
        other = await client.send(frame(7, bytes.fromhex("04 00 16 00 02")))
        broadcast = await client.send(frame(0, bytes.fromhex("05 00 01 FF 00")))  # imd_disable := 1
        return other, broadcast, sim.gateways[0].other_unit, sim.pack.insulation_monitor_enabled

    assert on_pty(body) == (b"", b"", 1, False)


def test_inter_frame_silence_delimits_frames():
    baud = 115200
    assert (t15(baud), t35(baud)) == (0.00075, 0.00175)
    assert t35(9600) == pytest.approx(3.5 * 11 / 9600)

    async def main():
        sim = SimModbusBms(Pack(PRESETS["car-400"]), Wiring(lv_power=True))
        host, port = (await sim.start_rtu("socket", baud=baud)).removeprefix("socket://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))

        async def halves(gap: float) -> bytes:
            writer.write(READ_COUNTS[:4])
            await asyncio.sleep(gap)
            writer.write(READ_COUNTS[4:])
            try:
                return await asyncio.wait_for(reader.read(256), 0.05)
            except TimeoutError:
                return b""

        try:
            joined = await halves(0.0005)  # < t1.5: one frame
            voided = await halves(0.0012)  # > t1.5, < t3.5: the frame is void
            split = await halves(0.005)    # > t3.5: two frames, each with a wrong CRC
            g = sim.gateways[0]
            return joined, voided, split, g.broken, g.bad_crc
        finally:
            writer.close()
            await sim.stop()

    assert run(main(), virtual=True) == (COUNTS_CAR, b"", b"", 1, 2)


@pytest.mark.parametrize("request_pdu, code", [
    ("04 00 32 00 01", 2),   # input 50: no field there
    ("06 00 40 00 01", 2),   # holding 64: no field there
    ("06 00 00 00 09", 3),   # mode_request 9: above max 3
    ("06 00 0A 00 01", 1),   # eol_flag while locked (DID security level 1): not in this state
])
def test_exception_codes(request_pdu, code):
    pdu = bytes.fromhex(request_pdu)

    async def body(sim, client):
        return parse_frame(await client.send(frame(1, pdu), expect=5))

    assert on_pty(body) == (1, bytes([pdu[0] | 0x80, code]))


def test_an_unpowered_bms_is_silent_on_rtu_and_answers_exception_11_on_tcp():
    async def main():
        wiring = Wiring(lv_power=False)
        sim = SimModbusBms(Pack(PRESETS["car-400"]), wiring)
        path = await sim.start_rtu("pty")
        client = PtyClient(path)
        tcp = ModbusTransport(f"modbus-tcp://{await sim.start()}?unit=1", timeout=0.2, instrument="bms")
        await tcp.open()
        try:
            silent = await client.send(READ_COUNTS)
            with pytest.raises(DeviceError) as err:
                await tcp.read_input(22, 2)
            wiring.lv_power = True
            awake = await client.send(READ_COUNTS, expect=9)
            return silent, err.value.code, awake
        finally:
            client.close()
            await tcp.close()
            await sim.stop()

    assert run(main(), virtual=False) == (b"", 11, COUNTS_CAR)


def test_socket_link_and_tcp_serve_the_same_registers():
    async def main():
        sim = SimModbusBms(Pack(PRESETS["bus-700"]), Wiring(lv_power=True))
        port = await sim.start_rtu("socket")
        links = [ModbusTransport(f"modbus-rtu://{port}?baud=115200&unit=1", timeout=0.5, instrument="bms"),
                 ModbusTransport(f"modbus-tcp://{await sim.start()}?unit=1", timeout=0.5, instrument="bms")]
        try:
            out = []
            for link in links:
                await link.open()
                out.append(await link.read_input(22, 2))
            wrong = ModbusTransport(f"modbus-rtu://{port}?baud=115200&unit=2", timeout=0.2, instrument="bms")
            await wrong.open()
            with pytest.raises(InstrumentTimeout):
                await wrong.read_input(22, 2)
            await wrong.close()
            return out
        finally:
            for link in links:
                await link.close()
            await sim.stop()

    assert run(main(), virtual=True) == [[216, 48], [216, 48]]


def test_a_closed_mode_opens_when_the_master_stops_talking():
    async def main():
        sim = SimModbusBms(Pack(PRESETS["car-400"]), Wiring(lv_power=True))
        tcp = ModbusTransport(f"modbus-tcp://{await sim.start()}?unit=1", timeout=0.5, instrument="bms")
        await tcp.open()
        await tcp.write_register(0, 1)  # mode_request := normal
        states = []
        for _ in range(10):  # keep polling for 1 s: the mode holds
            await asyncio.sleep(0.1)
            await tcp.read_input(15, 1)
            states.append(sim.state)
        await asyncio.sleep(1.5)  # silence: the 1 s watchdog opens the contactors
        after = sim.state, sim.pack.contactor_closed("main_plus"), sim.machine.error_flags
        await tcp.close()
        await sim.stop()
        return states, after

    states, after = run(main(), virtual=True)
    assert states[-1] == "normal" and "precharge" in states[:3]
    assert after == ("error", False, 1 << 5)  # ERR_REQUEST_TIMEOUT
