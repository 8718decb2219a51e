"""Modbus TCP/RTU transport over pymodbus' async clients, with typed errors only.

Resources::

    modbus-tcp://HOST:PORT?unit=1
    modbus-rtu:///dev/ttyUSB0?baud=115200&parity=N&unit=1      (bytesize=8, stopbits=1)
    modbus-rtu://socket://127.0.0.1:5020?baud=115200&unit=1    (any pyserial URL as the port)

Addresses are 0-based protocol addresses. Every call is bounded by ``timeout`` on the running
loop's clock (virtual under the simulator) and raises instead of returning pymodbus'
``isError()`` objects: a Modbus exception response -> ``DeviceError(code=n)``, no reply ->
``InstrumentTimeout``, connection refused/lost -> ``ConnectError``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from drivers.errors import ConnectError, DeviceError, InstrumentTimeout, ProtocolError, RangeError

EXCEPTION_NAMES = {
    1: "ILLEGAL_FUNCTION",
    2: "ILLEGAL_DATA_ADDRESS",
    3: "ILLEGAL_DATA_VALUE",
    4: "SERVER_DEVICE_FAILURE",
    5: "ACKNOWLEDGE",
    6: "SERVER_DEVICE_BUSY",
    8: "MEMORY_PARITY_ERROR",
    10: "GATEWAY_PATH_UNAVAILABLE",
    11: "GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND",
}
# pymodbus client method -> the name callers know (ModbusTransport's own method)
_NAMES = {"read_holding_registers": "read_holding", "read_input_registers": "read_input"}
_QUERY_KEYS = {"tcp": ("unit",), "rtu": ("unit", "baud", "parity", "bytesize", "stopbits")}


@dataclass(frozen=True)
class ModbusEndpoint:
    """A parsed resource: ``kind`` "tcp" (host, port) or "rtu" (port = device path or pyserial URL)."""

    kind: str
    host: str = ""
    port: int | str = 502
    unit: int = 1
    baud: int = 19200
    parity: str = "N"
    bytesize: int = 8
    stopbits: int = 1


def parse_resource(resource: str, instrument: str = "") -> ModbusEndpoint:
    """Parse a ``modbus-tcp://`` / ``modbus-rtu://`` resource; ``ConnectError`` says what is wrong."""

    def bad(why: str) -> ConnectError:
        return ConnectError(f"bad Modbus resource {resource!r}: {why}", instrument=instrument)

    scheme, sep, rest = resource.partition("://")
    kind = {"modbus-tcp": "tcp", "modbus-rtu": "rtu"}.get(scheme.lower())
    if not sep or kind is None:
        raise bad("expected modbus-tcp://HOST:PORT or modbus-rtu://DEVICE")
    target, _, query = rest.rpartition("?") if "?" in rest else (rest, "", "")
    params = dict(parse_qsl(query, keep_blank_values=True))
    unknown = sorted(set(params) - set(_QUERY_KEYS[kind]))
    if unknown:
        raise bad(f"unknown option(s) {', '.join(unknown)} (valid: {', '.join(_QUERY_KEYS[kind])})")
    try:
        opts = {k: (params[k].upper() if k == "parity" else int(params[k])) for k in params}
    except ValueError:
        raise bad("unit, baud, bytesize and stopbits must be integers") from None
    if not 0 <= opts.get("unit", 1) <= 247:
        raise bad("unit must be 0..247")
    if opts.get("parity", "N") not in ("N", "E", "O", "M", "S"):
        raise bad("parity must be N, E, O, M or S")
    if kind == "tcp":
        host, colon, port = target.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise bad("expected HOST:PORT with a port 1..65535")
        return ModbusEndpoint("tcp", host.strip("[]"), int(port), unit=opts.get("unit", 1))
    if not target:
        raise bad("missing serial device")
    rtu = {"baud": "baud", "parity": "parity", "bytesize": "bytesize", "stopbits": "stopbits", "unit": "unit"}
    return ModbusEndpoint("rtu", port=target, **{rtu[k]: v for k, v in opts.items()})


class ModbusTransport:
    """Async Modbus client; ``instrument`` names the station role in every error message."""

    def __init__(self, resource: str, *, timeout: float = 2.0, instrument: str = "") -> None:
        self.resource = resource
        self.timeout = timeout
        self.instrument = instrument
        self.endpoint = parse_resource(resource, instrument)
        self._client = None

    async def open(self) -> None:
        """Connect within ``timeout``; ``ConnectError`` if refused or unreachable."""
        await self.close()  # re-opening after a lost link starts from a fresh client
        ep = self.endpoint
        # retries=0 and a client timeout above ours: our wait_for decides what a timeout is,
        # so no request silently takes (retries + 1) x timeout. reconnect_delay=0: a lost
        # link is reported (ConnectError), not papered over by background reconnects.
        common = {"timeout": self.timeout + 1.0, "retries": 0, "reconnect_delay": 0,
                  "name": self.instrument or "modbus"}
        if ep.kind == "tcp":
            client = AsyncModbusTcpClient(ep.host, port=int(ep.port), **common)
        else:
            client = AsyncModbusSerialClient(str(ep.port), baudrate=ep.baud, parity=ep.parity,
                                             bytesize=ep.bytesize, stopbits=ep.stopbits, **common)
        try:
            ok = await asyncio.wait_for(client.connect(), self.timeout)
        except (asyncio.TimeoutError, OSError) as exc:
            client.close()
            raise ConnectError(f"cannot connect to {self.resource}: {exc or 'timeout'}",
                               instrument=self.instrument) from None
        if not ok:
            client.close()
            raise ConnectError(f"cannot connect to {self.resource}", instrument=self.instrument)
        self._client = client

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def __aenter__(self) -> "ModbusTransport":
        await self.open()
        return self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        await self.close()

    # -- the Modbus function codes ----------------------------------------------------------
    async def read_coils(self, address: int, count: int) -> list[bool]:
        """FC1: ``count`` coils from ``address``."""
        rsp = await self._call("read_coils", address, count, count=count)
        return [bool(b) for b in rsp.bits[:count]]

    async def read_discrete_inputs(self, address: int, count: int) -> list[bool]:
        """FC2: ``count`` discrete inputs from ``address``."""
        rsp = await self._call("read_discrete_inputs", address, count, count=count)
        return [bool(b) for b in rsp.bits[:count]]

    async def read_holding(self, address: int, count: int) -> list[int]:
        """FC3: ``count`` raw 16-bit holding registers from ``address``."""
        rsp = await self._call("read_holding_registers", address, count, count=count)
        return self._registers(rsp, "read_holding", address, count)

    async def read_input(self, address: int, count: int) -> list[int]:
        """FC4: ``count`` raw 16-bit input registers from ``address``."""
        rsp = await self._call("read_input_registers", address, count, count=count)
        return self._registers(rsp, "read_input", address, count)

    async def write_coil(self, address: int, value: bool) -> None:
        """FC5: one coil."""
        await self._call("write_coil", address, bool(value))

    async def write_coils(self, address: int, values: Sequence[bool]) -> None:
        """FC15: consecutive coils from ``address``."""
        await self._call("write_coils", address, [bool(v) for v in values])

    async def write_register(self, address: int, value: int) -> None:
        """FC6: one raw 16-bit holding register."""
        await self._call("write_register", address, int(value))

    async def write_registers(self, address: int, values: Sequence[int]) -> None:
        """FC16: consecutive raw 16-bit holding registers from ``address``."""
        await self._call("write_registers", address, [int(v) for v in values])

    # -- one bounded request, errors typed --------------------------------------------------
    async def _call(self, method: str, address: int, arg: object, **kw):
        """``client.<method>(address, [arg,] ...)`` within ``timeout``; the reply or a typed error."""
        function = _NAMES.get(method, method)
        command = f"{function}({address}, {arg!r})"
        where = {"instrument": self.instrument, "command": command}
        if self._client is None:
            raise ConnectError("transport is not open", **where)
        self._check(function, address, arg, kw.get("count"), where)
        args = (address,) if "count" in kw else (address, arg)
        try:
            rsp = await asyncio.wait_for(
                getattr(self._client, method)(*args, device_id=self.endpoint.unit, **kw), self.timeout)
        except asyncio.TimeoutError:
            raise InstrumentTimeout(f"no reply within {self.timeout:g} s", **where) from None
        except ConnectionException as exc:
            raise ConnectError(f"connection lost: {exc}", **where) from None
        except ModbusIOException as exc:
            if "no response" in str(exc).lower():
                raise InstrumentTimeout(f"no reply: {exc}", **where) from None
            raise ProtocolError(f"bad reply: {exc}", **where) from None
        except OSError as exc:
            raise ConnectError(f"link error: {exc}", **where) from None
        if rsp is None:
            raise InstrumentTimeout("no reply", **where)
        if rsp.isError():
            code = int(getattr(rsp, "exception_code", 0) or 0)
            name = EXCEPTION_NAMES.get(code, "UNKNOWN_EXCEPTION")
            raise DeviceError(f"{function} at address {address} answered Modbus exception {code} {name}",
                              code=code, **where)
        return rsp

    @staticmethod
    def _check(function: str, address: int, arg: object, count: int | None, where: dict) -> None:
        """Refuse what no Modbus frame can carry, before anything is sent."""
        limit = 2000 if "coil" in function or "discrete" in function else 125
        if count is not None:
            n = count
        else:
            n = len(arg) if isinstance(arg, list) else 1
        if not 0 <= address <= 0xFFFF or not 1 <= n <= limit or address + n > 0x10000:
            raise RangeError(f"{function}: address {address} + {n} item(s) outside the Modbus limits "
                             f"(address 0..65535, 1..{limit} items)", **where)
        values = arg if isinstance(arg, list) else [arg]
        if "register" in function and count is None and not all(0 <= v <= 0xFFFF for v in values):
            raise RangeError(f"{function}: register values must be 0..65535, got {arg!r}", **where)

    def _registers(self, rsp, function: str, address: int, count: int) -> list[int]:
        regs = list(rsp.registers)
        if len(regs) < count:
            raise ProtocolError(f"{function} at address {address}: {len(regs)} of {count} registers returned",
                                instrument=self.instrument, command=f"{function}({address}, {count})")
        return regs[:count]
