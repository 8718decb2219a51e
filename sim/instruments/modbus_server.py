"""A simulated Modbus device that serves a register map on Modbus TCP (or RTU framing over TCP).

``MapServer`` keeps engineering values by field name in ``values`` and exposes them on the
wire exactly as ``drivers/maps/*.yaml`` lays them out, so a driver cannot tell it from a PLC.
The wire itself (PDU layouts, MBAP and RTU framing) is sim/instruments/modbus_wire.py.
Subclasses add behaviour through three hooks:

- ``on_request()``: every request, first (watchdog kicks, physics catch-up);
- ``refresh(table)``: before a read, update the values the device computes;
- ``apply(table, changes)``: a write of ``{name: value}`` (already range-checked against the
  map's min/max); return an ``ExcCodes`` to refuse it, ``None`` to accept.

Every address a request touches must belong to a field, else exception 2 (ILLEGAL_DATA_ADDRESS);
writes to read-only fields answer 2 too, values outside the map's min/max exception 3
(ILLEGAL_DATA_VALUE). A subclass that refuses requests wholesale (a dead device behind a
gateway) overrides ``_action``.
"""

from __future__ import annotations

import asyncio

from pymodbus.constants import ExcCodes

from drivers.maps.regmap import TABLES, Field, RegisterMap
from sim.instruments.modbus_wire import ModbusConnection, decode_request, encode_response, exception_response

_TABLE_OF_FC = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 3: "holding", 6: "holding", 16: "holding",
                4: "input"}
_READS_KEPT = 256  # read plans a server keeps (clients poll a few fixed blocks)
_ANY_UNIT = (0, 0xFF)  # TCP: 0xFF is the spec's "the device itself"; 0 an RTU broadcast


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
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Transport] = set()
        # table -> {address: field occupying it}: a request checks every address it touches
        self._at = {t: {f.address + i: f for f in regmap.table(t) for i in range(f.count)} for t in TABLES}
        self._reads: dict[tuple[str, int, int], tuple | ExcCodes] = {}  # _read_plan by (table, address, count)

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
        """Listen on ``host:port`` (0 = any free port); return ``"HOST:PORT"``.

        ``rtu=True`` speaks RTU framing (CRC, no MBAP header) over the TCP socket, the way a
        serial line reaches a client through ``modbus-rtu://socket://HOST:PORT``.
        """
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: ModbusConnection(self, self._connections, rtu=rtu),
                                                host, port)
        return f"{host}:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        """Stop listening and drop every connection (idempotent)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for transport in list(self._connections):
            transport.abort()
        if server is not None:
            await server.wait_closed()

    # -- the wire's side (sim/instruments/modbus_wire.py) -------------------------------------
    def answer(self, unit: int, pdu: bytes) -> bytes | None:
        """The response PDU to request ``pdu`` for ``unit``; None in "hang" mode (never answered).

        A unit other than ours answers exception 11 (gateway target failed to respond).
        """
        if self.behaviour == "hang":
            return None
        fc = pdu[0]
        if unit != self.device_id and unit not in _ANY_UNIT:
            return exception_response(fc, ExcCodes.GATEWAY_NO_RESPONSE)
        request = decode_request(pdu)
        if isinstance(request, ExcCodes):
            return exception_response(fc, request)
        try:
            result = self._action(*request)
        except ValueError:  # a value the map's type cannot carry: the device fails, as the spec says
            result = ExcCodes.DEVICE_FAILURE
        if isinstance(result, ExcCodes):
            return exception_response(fc, result)
        return encode_response(request, pdu, result)

    def outgoing(self, data: bytes) -> bytes:
        """A framed response as it leaves: corrupted in "garbage" mode."""
        if self.behaviour == "garbage":
            return bytes((b * 37 + 11) & 0xFF for b in data[::-1])
        return data

    # -- serving one request ----------------------------------------------------------------
    def _action(self, fc: int, address: int, count: int, values: list | None) -> list[int] | ExcCodes | None:
        """Serve a decoded request: the ``count`` raw values read (bits as 0/1), None for an
        accepted write (``values``: bools for coils, 0..65535 for registers), or an exception code."""
        table = _TABLE_OF_FC[fc]
        self.requests += 1
        self.on_request()
        if values is None:
            return self._read(table, address, count)
        return self._write(table, address, values)

    def _read(self, table: str, address: int, count: int) -> list[int] | ExcCodes:
        key = (table, address, count)
        plan = self._reads.get(key)
        if plan is None:
            if len(self._reads) >= _READS_KEPT:
                self._reads.clear()
            plan = self._reads[key] = self._read_plan(table, address, count)
        if plan is ExcCodes.ILLEGAL_ADDRESS:
            return plan
        self.refresh(table)
        raw = [0] * count
        values = self.values
        for name, f, first in plan:
            if f is None:  # a bit
                raw[first] = 1 if values[name] else 0
                continue
            for i, word in enumerate(f.encode(values[name]), first):  # may lie partly outside the range
                if 0 <= i < count:
                    raw[i] = int(word)
        return raw

    def _read_plan(self, table: str, address: int, count: int) -> tuple | ExcCodes:
        """The fields a read covers as ``(name, field or None for a bit, offset in the reply)``, or
        ILLEGAL_ADDRESS if an address in it belongs to no field. The map never changes: a client
        polls the same block (the station's 50 ms fixture poll), so this is kept per request."""
        at, end = self._at[table], address + count
        plan = []
        a = address
        while a < end:
            f = at.get(a)
            if f is None:
                return ExcCodes.ILLEGAL_ADDRESS
            plan.append((f.name, None if f.type == "bool" else f, f.address - address))
            a = f.address + f.count
        return tuple(plan)

    def _write(self, table: str, address: int, new: list) -> ExcCodes | None:
        at = self._at[table]
        touched: dict[str, Field] = {}
        for a in range(address, address + len(new)):
            f = at.get(a)
            if f is None or not f.writable:
                return ExcCodes.ILLEGAL_ADDRESS
            touched[f.name] = f
        self.refresh(table)  # a write starts from the device's actual state
        changes: dict[str, float | int | bool] = {}
        for f in touched.values():
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
