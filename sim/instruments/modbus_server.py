"""A simulated Modbus TCP device that serves a register map (pymodbus 3.16 ``SimDevice``).

``MapServer`` keeps engineering values by field name in ``values`` and exposes them on the
wire exactly as ``drivers/maps/*.yaml`` lays them out, so a driver cannot tell it from a PLC.
Subclasses add behaviour through three hooks:

- ``on_request()``: every request, first (watchdog kicks, physics catch-up);
- ``refresh(table)``: before a read, update the values the device computes;
- ``apply(table, changes)``: a write of ``{name: value}`` (already range-checked against the
  map's min/max); return an ``ExcCodes`` to refuse it, ``None`` to accept.

Unmapped addresses answer exception 2 (ILLEGAL_DATA_ADDRESS), writes to read-only fields too;
values outside the map's min/max answer exception 3 (ILLEGAL_DATA_VALUE). One limit of
pymodbus' action API: a coil/discrete read is checked at its first address only (the action
sees the count in 16-bit words), so a read running past the last mapped bit returns False there.
"""

from __future__ import annotations

import asyncio

from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from drivers.maps.regmap import TABLES, Field, RegisterMap

_TABLE_OF_FC = {1: "coil", 5: "coil", 15: "coil", 2: "discrete",
                3: "holding", 6: "holding", 16: "holding", 22: "holding", 23: "holding", 4: "input"}
_BIT_TABLES = ("coil", "discrete")


class MapServer:
    """Serves ``regmap`` as Modbus unit ``device_id`` on loopback; in the caller's event loop."""

    def __init__(self, regmap: RegisterMap, *, device_id: int = 1) -> None:
        self.map = regmap
        self.device_id = device_id
        self.values: dict[str, float | int | bool] = {
            f.name: (False if f.type == "bool" else 0) for f in regmap.fields
        }
        self.requests = 0  # served requests, for tests and diagnostics
        # fault injection: "hang" accepts requests and never answers; "garbage" answers noise
        self.behaviour = "normal"
        self._server: ModbusTcpServer | None = None
        self._released = asyncio.Event()

    # -- hooks ------------------------------------------------------------------------------
    def on_request(self) -> None:
        """Called first on every request."""

    def refresh(self, table: str) -> None:
        """Bring computed values of ``table`` up to date before a read."""

    def apply(self, table: str, changes: dict[str, float | int | bool]) -> ExcCodes | None:
        """Act on a write; ``self.values`` already holds ``changes`` (rolled back on refusal)."""
        return None

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0, *, rtu: bool = False) -> str:
        """Listen on ``host:port`` (0 = any free port); return ``"127.0.0.1:PORT"``.

        ``rtu=True`` speaks RTU framing (CRC, no MBAP header) over the TCP socket, the way a
        serial line reaches a client through ``modbus-rtu://socket://HOST:PORT``.
        """
        blocks = tuple(self._simdata(t) for t in TABLES)
        device = SimDevice(id=self.device_id, simdata=blocks, action=self._action)
        self._released = asyncio.Event()
        framer = FramerType.RTU if rtu else FramerType.SOCKET
        self._server = ModbusTcpServer(device, framer=framer, address=(host, port), trace_packet=self._trace)
        await self._server.serve_forever(background=True)
        real_port = self._server.transport.sockets[0].getsockname()[1]
        return f"{host}:{real_port}"

    async def stop(self) -> None:
        """Stop listening and drop every connection (idempotent)."""
        self._released.set()
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    def _trace(self, sending: bool, data: bytes) -> bytes:
        """pymodbus' packet hook: corrupts outgoing frames in "garbage" mode."""
        if sending and self.behaviour == "garbage":
            return bytes((b * 37 + 11) & 0xFF for b in data[::-1])
        return data

    def _simdata(self, table: str) -> list[SimData]:
        fields = self.map.table(table)
        if table in _BIT_TABLES:
            # pymodbus needs one block per table: an empty table still gets a bit, which the
            # action refuses because no field lives there.
            return [SimData(f.address, values=[False], datatype=DataType.BITS) for f in fields] or [
                SimData(0, values=[False], datatype=DataType.BITS)]
        return [SimData(f.address, values=[0] * f.count, datatype=DataType.REGISTERS, readonly=not f.writable)
                for f in fields] or [SimData(0, datatype=DataType.INVALID)]

    # -- the pymodbus action: runs before a write is applied, and on every read -------------
    async def _action(self, fc: int, start: int, address: int, count: int,
                      registers: list[int], set_values: list | None) -> ExcCodes | None:
        table = _TABLE_OF_FC.get(fc)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        if self.behaviour == "hang":
            await self._released.wait()
            return ExcCodes.DEVICE_FAILURE
        self.requests += 1
        self.on_request()
        if set_values is None:
            if fc in (5, 6):
                return None  # read-back of a single write: echo what was written
            if self.map.at(table, address) is None:
                return ExcCodes.ILLEGAL_ADDRESS
            self.refresh(table)
            self._store(table, start, registers)
            return None
        return self._write(table, address, list(set_values))

    def _write(self, table: str, address: int, new: list) -> ExcCodes | None:
        self.refresh(table)  # a write starts from the device's actual state
        touched: list[Field] = []
        for a in range(address, address + len(new)):
            f = self.map.at(table, a)
            if f is None or not f.writable:
                return ExcCodes.ILLEGAL_ADDRESS
            if f not in touched:
                touched.append(f)
        changes: dict[str, float | int | bool] = {}
        for f in touched:
            raw = list(f.encode(self.values[f.name]))
            for i in range(f.count):  # overlay: a write may cover only part of a 32-bit value
                if address <= f.address + i < address + len(new):
                    raw[i] = new[f.address + i - address]
            value = f.decode(raw)
            if value != value or (f.min is not None and value < f.min) or (f.max is not None and value > f.max):
                return ExcCodes.ILLEGAL_VALUE
            changes[f.name] = value
        old = {k: self.values[k] for k in changes}
        self.values.update(changes)
        refused = self.apply(table, changes)
        if refused:
            self.values.update(old)
        return refused

    def _store(self, table: str, start: int, registers: list[int]) -> None:
        """Write ``values`` of ``table`` into pymodbus' raw block (``start`` = its first index)."""
        for f in self.map.table(table):
            if table in _BIT_TABLES:
                index, bit = f.address // 16 - start, f.address % 16
                if self.values[f.name]:
                    registers[index] |= 1 << bit
                else:
                    registers[index] &= ~(1 << bit) & 0xFFFF
            else:
                for i, word in enumerate(f.encode(self.values[f.name])):
                    registers[f.address - start + i] = int(word)
