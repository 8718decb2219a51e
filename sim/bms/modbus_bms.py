"""The simulated pack BMS on Modbus: TCP, and RTU on a serial link, from drivers/maps/modbus_bms.yaml.

The pack model, contactor state machine (sim/bms/state_machine.py), measurements and ECU state
(identity, EOL data, DTCs, seed/key: sim/bms/ecu.py) are the CAN BMS's; only the wire differs.
``start()`` serves Modbus TCP (``MapServer``); ``start_rtu(link)`` adds an RTU
front-end on a pty pair (``link="pty"``, returns ``/dev/pts/N``; real time only, see
drivers/transports/rtu_link.py) or a pyserial ``socket://`` link (returns
``socket://127.0.0.1:PORT``; fine on virtual time). The RTU side behaves as a device on an RS-485 bus:
a frame ends after 3.5 character times of silence, a gap over 1.5 character times inside a
frame voids it, a bad CRC and any other unit id get no answer (unit 0 = broadcast: executed,
never answered); a valid frame is passed to the device's own TCP port as one request, the way
a serial gateway does, so exception codes (2 unmapped address, 3 value outside min/max or a
wrong key, 1 an EOL write while locked) are the same on both wires.

Unpowered (``wiring.lv_power`` off) or after ``silent_after(t)`` the BMS is dead: no RTU
answer, and Modbus TCP answers exception 11 (gateway target failed to respond). A closed mode
is held only while the master keeps sending requests (``request_timeout``, 1 s).
"""

from __future__ import annotations

import asyncio
import os

from pymodbus.constants import ExcCodes

from drivers.bms.modbus_bms import load_bms_map
from drivers.transports.rtu_link import PtyLink, frame, parse_frame, t15, t35
from sim.bms.ecu import ALL_DTCS, EcuState, NegativeResponse, Nrc
from sim.bms.measurements import Measurements
from sim.bms.state_machine import ERR_SENSOR, BmsStateMachine
from sim.instruments.modbus_server import MapServer

_FLAGS = ("contactor_main_plus", "contactor_main_minus", "contactor_precharge", "hvil_closed",
          "imd_enabled", "balancing_active")


class SimModbusBms(MapServer):
    """Simulated BMS of ``pack`` behind fixture ``wiring``, as Modbus unit ``device_id``."""

    def __init__(self, pack, wiring, *, map_path: str = "modbus_bms.yaml", device_id: int = 1, seed: int = 0,
                 ecu: EcuState | None = None, precharge_timeout: float | None = None,
                 request_timeout: float = 1.0) -> None:
        super().__init__(load_bms_map(map_path), device_id=device_id)
        self.pack, self.wiring, self._seed = pack, wiring, seed
        spec = getattr(pack, "spec", None)
        tau = float(getattr(spec, "precharge_ohm", 50.0)) * float(getattr(spec, "link_capacitance", 3e-3))
        self.machine = BmsStateMachine(pack, precharge_timeout=precharge_timeout or max(0.5, 6 * tau),
                                       request_timeout=request_timeout)
        self.ecu = ecu or EcuState.from_table(values={k: v for k, v in (
            ("part_number", getattr(spec, "bms_part_number", "")), ("sw_version", getattr(spec, "bms_sw_version", "")),
            ("hw_version", getattr(spec, "bms_hw_version", ""))) if v}, seed=seed)
        self.dids = {f.name: self.ecu.table.resolve(f.name) for f in self.map.fields
                     if any(e.name == f.name for e in self.ecu.table.entries.values())}
        for f in self.map.fields:
            self.values[f.name] = "" if f.text else ([0] * f.length if f.length > 1 else self.values[f.name])
        self.error_flags = 0
        self.gateways: list[RtuGateway] = []
        self._mode = 0  # latched mode_request (raw)
        self._seed_value = 0
        self._level = 0
        self._silent_at = float("inf")
        self.measure = Measurements(pack, seed=seed)
        self._address = ""

    @property
    def state(self) -> str:
        return self.machine.state

    def silent_after(self, t: float) -> None:
        """Answer nothing at or after loop time ``t`` (s): a BMS that dies on the bus."""
        self._silent_at = t

    def alive(self) -> bool:
        return bool(self.wiring.lv_power) and asyncio.get_running_loop().time() < self._silent_at

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0, *, rtu: bool = False) -> str:
        """Serve Modbus TCP on loopback; return ``127.0.0.1:PORT``."""
        if not self._address:
            self.machine.attach(self.wiring)
            self._address = await super().start(host, port, rtu=rtu)
        return self._address

    async def start_rtu(self, link: str = "pty", *, baud: int = 115200) -> str:
        """Add an RTU front-end on ``link`` ("pty" or "socket"); return the port the client opens."""
        host, port = (await self.start()).rsplit(":", 1)
        gateway = RtuGateway(self, (host, int(port)), baud)
        self.gateways.append(gateway)
        return await gateway.open(link)

    async def stop(self) -> None:
        for gateway in self.gateways:
            await gateway.close()
        self.gateways.clear()
        self.machine.detach()
        self.machine.open_all()
        self._address = ""
        await super().stop()

    # -- MapServer hooks --------------------------------------------------------------------
    def _action(self, fc, address, count, values):
        if not self.alive():
            return ExcCodes.GATEWAY_NO_RESPONSE
        return super()._action(fc, address, count, values)

    def on_request(self) -> None:
        """Any request feeds the watchdog: the latched closed mode stays requested."""
        self.values["alive_counter"] = (int(self.values.get("alive_counter", 0)) + 1) & 0xFFFF
        if self._mode:
            self.machine.request(self.map["mode_request"].text_of(self._mode), asyncio.get_running_loop().time())

    def refresh(self, table: str) -> None:
        v, pack = self.values, self.pack
        if table == "input":
            self._refresh_live()
            for name in self.dids:
                if self.map[name].table == "input":
                    v[name] = self._did_value(name)
            dtcs = self.ecu.dtcs[: self.map["dtcs"].length] if "dtcs" in self.map else []
            v["dtc_count"] = len(self.ecu.dtcs)
            v["dtcs"] = [d.code << 8 | d.status for d in dtcs] + [0] * (self.map["dtcs"].length - len(dtcs))
            v["security_seed"] = self._seed_value
        elif table == "holding":
            v.update(mode_request=self._mode, security_level=self._level, security_key=0)
            for name in self.dids:
                if self.map[name].table == "holding":
                    v[name] = self._did_value(name)
        elif table == "coil":
            v.update(imd_disable=not pack.insulation_monitor_enabled, dtc_clear=False, ecu_reset=False)
        for f in self.map.table(table):
            if not f.text and f.type != "bool" and f.length == 1:
                v[f.name] = _clamp(f, v[f.name])

    def _refresh_live(self) -> None:
        v, pack, m = self.values, self.pack, self.measure
        m.sample()
        low, low_i, high, high_i = m.extremes(m.cells)
        t_low, t_low_i, t_high, t_high_i = m.extremes(m.temps)
        flags = {"contactor_main_plus": pack.contactor_closed("main_plus"),
                 "contactor_main_minus": pack.contactor_closed("main_minus"),
                 "contactor_precharge": pack.contactor_closed("precharge"), "hvil_closed": pack.hvil_closed(),
                 "imd_enabled": pack.insulation_monitor_enabled, "balancing_active": any(pack.balancing_flags())}
        errors = self.error_flags | self.machine.error_flags
        if any(x is None for x in m.cells + m.temps):
            errors |= ERR_SENSOR
        reading = pack.imd_reading() if pack.insulation_monitor_enabled else None
        v.update(pack_voltage=m.pack_voltage(), pack_current=m.pack_current(), bus_voltage=float(pack.bus_voltage()),
                 soc=100.0 * float(pack.soc()), soh=100.0, cell_voltage_min=low, cell_voltage_max=high,
                 cell_voltage_min_index=low_i, cell_voltage_max_index=high_i, cell_temperature_min=t_low,
                 cell_temperature_max=t_high, cell_temperature_min_index=t_low_i,
                 cell_temperature_max_index=t_high_i,
                 bms_state=self.map["bms_state"].state(self.machine.state if self.machine.state in
                                                       dict(self.map["bms_state"].states) else "error"),
                 status_flags=self.map["status_flags"].word({k for k, on in flags.items() if on}),
                 error_flags=errors, imd_resistance=0.0 if reading is None else float(reading),
                 balancing_cells=sum(bool(f) for f in pack.balancing_flags()),
                 cell_count=len(m.cells), temperature_sensor_count=len(m.temps))
        # an open sense wire reads 0 V and a dead sensor the type's minimum, as on CAN
        cells, temps = self.map["cell_voltages"], self.map["cell_temperatures"]
        v["cell_voltages"] = [0.0 if x is None else x for x in m.cells][: cells.length]
        v["cell_voltages"] += [0.0] * (cells.length - len(v["cell_voltages"]))
        v["cell_temperatures"] = [-3276.8 if x is None else x for x in m.temps][: temps.length]
        v["cell_temperatures"] += [0.0] * (temps.length - len(v["cell_temperatures"]))
        for name in ("cell_voltages", "cell_temperatures"):
            v[name] = [_clamp(self.map[name], x) for x in v[name]]

    def _did_value(self, name: str):
        data = self.ecu.dids[self.dids[name].did]
        f = self.map[name]
        return data.decode("ascii", "replace").rstrip(" \x00") if f.text else int.from_bytes(data, "big")

    def apply(self, table: str, changes: dict) -> ExcCodes | None:
        now = asyncio.get_running_loop().time()
        try:
            for name, value in changes.items():
                if name == "mode_request":
                    self._mode = int(value)
                    self.machine.request(self.map[name].text_of(self._mode), now)
                elif name == "security_level":
                    self._level = int(value)
                    self._seed_value = int.from_bytes(self.ecu.request_seed(self._level, now), "big")
                elif name == "security_key":
                    self.ecu.send_key(self._level, int(value).to_bytes(4, "big"), now)
                    self._seed_value = 0
                elif name in self.dids:
                    entry = self.dids[name]
                    self.ecu.write_did(entry.did, self.map[name].to_bytes([value], entry.length))
                elif name == "balancing_request":
                    self.pack.set_balancing(bool(value))
                elif name == "imd_disable":
                    self.pack.set_insulation_monitor(not value)
                elif name == "dtc_clear" and value:
                    self.ecu.clear_dtcs(ALL_DTCS)
                elif name == "ecu_reset" and value:
                    self.ecu.hard_reset()
        except NegativeResponse as exc:
            # a locked EOL field: "not allowed in the current state" (Modbus spec, exception 1)
            return ExcCodes.ILLEGAL_FUNCTION if exc.nrc == Nrc.SECURITY_ACCESS_DENIED else ExcCodes.ILLEGAL_VALUE
        return None


def _clamp(f, x: float) -> float:
    """``x`` limited to what ``f``'s raw type can carry (a sensor saturates, never wraps)."""
    bits = 16 * {"uint16": 1, "int16": 1, "uint32": 2, "int32": 2}.get(f.type, 0)
    if not bits or x != x:
        return x
    low, high = (-(1 << bits - 1), (1 << bits - 1) - 1) if f.type.startswith("int") else (0, (1 << bits) - 1)
    return min(max(x, low * f.scale), high * f.scale)


class RtuGateway:
    """One RTU link to ``device``: frames by silence, checks CRC and unit, forwards to its TCP port.

    Counters for tests and diagnostics: ``answered``, ``bad_crc``, ``other_unit``, ``broken``
    (a gap over t1.5 inside a frame); ``frames`` keeps every received frame as bytes.
    """

    def __init__(self, device: SimModbusBms, tcp: tuple[str, int], baud: int) -> None:
        self.device, self.tcp, self.baud = device, tcp, baud
        self.answered = self.bad_crc = self.other_unit = self.broken = 0
        self.frames: list[bytes] = []
        self._pty: PtyLink | None = None
        self._server: asyncio.base_events.Server | None = None
        self._queue: asyncio.Queue = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._buf, self._last, self._gap, self._timer = bytearray(), 0.0, False, None
        self._tid = 0

    async def open(self, link: str) -> str:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection(*self.tcp)
        self._tasks.append(loop.create_task(self._forward(reader, writer)))
        if link == "pty":
            self._pty = PtyLink()
            path = self._pty.open()
            fd = self._pty.master_fd
            loop.add_reader(fd, lambda: self._feed(_read_fd(fd), lambda data: os.write(fd, data)))
            return path
        if link == "socket":
            self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
            return f"socket://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        raise ValueError(f"link must be 'pty' or 'socket', got {link!r}")

    async def close(self) -> None:
        if self._pty is not None and self._pty.master_fd is not None:
            asyncio.get_running_loop().remove_reader(self._pty.master_fd)
            self._pty.close()
        if self._server is not None:
            self._server.close()
        for writer in self._writers:  # the client loop then ends on EOF
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._timer is not None:
            self._timer.cancel()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            while data := await reader.read(512):
                self._feed(data, writer.write)
        finally:
            writer.close()

    def _feed(self, data: bytes, send) -> None:
        """Bytes off the line: a gap over t1.5 voids the frame; t3.5 of silence ends it."""
        if not data:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._buf and now - self._last > t15(self.baud):
            self._gap = True
        self._buf += data
        self._last = now
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(t35(self.baud), self._end_of_frame, send)

    def _end_of_frame(self, send) -> None:
        raw, gap = bytes(self._buf), self._gap
        self._buf, self._gap, self._timer = bytearray(), False, None
        self.frames.append(raw)
        parsed = None if gap else parse_frame(raw)
        if gap:
            self.broken += 1
        elif parsed is None:
            self.bad_crc += 1  # as on a real bus: no answer, the master times out
        elif parsed[0] not in (0, self.device.device_id):
            self.other_unit += 1
        elif self.device.alive():
            self._queue.put_nowait((parsed[0], parsed[1], send))

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One request at a time, as on a half-duplex bus: PDU -> MBAP -> reply PDU -> RTU frame."""
        try:
            while True:
                unit, pdu, send = await self._queue.get()
                self._tid = (self._tid + 1) & 0xFFFF
                mbap = self._tid.to_bytes(2, "big") + b"\0\0" + (len(pdu) + 1).to_bytes(2, "big")
                writer.write(mbap + bytes([self.device.device_id]) + pdu)
                header = await reader.readexactly(7)
                reply = await reader.readexactly(int.from_bytes(header[4:6], "big") - 1)
                if unit != 0:  # broadcasts are executed but never answered
                    send(frame(unit, reply))
                    self.answered += 1
        finally:
            writer.close()


def _read_fd(fd: int) -> bytes:
    try:
        return os.read(fd, 1024)
    except (BlockingIOError, OSError):
        return b""
