"""Modbus TCP/RTU transport with typed errors only: our own TCP client, pymodbus' serial client.

Resources::

    modbus-tcp://HOST:PORT?unit=1
    modbus-rtu:///dev/ttyUSB0?baud=115200&parity=N&unit=1      (bytesize=8, stopbits=1)
    modbus-rtu://socket://127.0.0.1:5020?baud=115200&unit=1    (any pyserial URL as the port)

Addresses are 0-based protocol addresses. Every call is bounded by ``timeout`` on the running
loop's clock (virtual under the simulator) and raises instead of returning error objects: a
Modbus exception response -> ``DeviceError(code=n)``, no reply -> ``InstrumentTimeout``,
connection refused/lost -> ``ConnectError``, a reply that is not the answer -> ``ProtocolError``.
``modbus-tcp://`` runs on drivers/transports/modbus_tcp.py (with pymodbus' client a 50 ms
interlock poll cost about twice the CPU); after its link is lost every call raises
``ConnectError`` until ``open()``, and ``lost`` says so.
``modbus-rtu://`` uses pymodbus' ``AsyncModbusSerialClient``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeAlias
from urllib.parse import parse_qsl

from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusIOException

from drivers.clock import reply_timeout
from drivers.errors import ConnectError, DeviceError, InstrumentError, InstrumentTimeout, ProtocolError, RangeError
from drivers.transports import modbus_tcp
from drivers.transports.modbus_tcp import BadReply, ExceptionReply, LinkDown
from drivers.transports.reach import connect_failure

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
_READ_FUNCTIONS = {1: "read_coils", 2: "read_discrete_inputs", 3: "read_holding", 4: "read_input"}
_READS_KEPT = 64  # prepared reads a transport keeps (a driver reads the few blocks of its map)
_QUERY_KEYS = {"tcp": ("unit",), "rtu": ("unit", "baud", "parity", "bytesize", "stopbits")}
Where: TypeAlias = dict[str, str]  # instrument and command, for the typed errors
ReadDone: TypeAlias = Callable[[list[bool] | list[int] | None, InstrumentError | None], None]


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
        ints = {k: int(v) for k, v in params.items() if k != "parity"}
    except ValueError:
        raise bad("unit, baud, bytesize and stopbits must be integers") from None
    unit, parity = ints.get("unit", 1), params.get("parity", "N").upper()
    if not 0 <= unit <= 247:
        raise bad("unit must be 0..247")
    if parity not in ("N", "E", "O", "M", "S"):
        raise bad("parity must be N, E, O, M or S")
    if kind == "tcp":
        host, colon, port = target.rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise bad("expected HOST:PORT with a port 1..65535")
        return ModbusEndpoint("tcp", host.strip("[]"), int(port), unit=unit)
    if not target:
        raise bad("missing serial device")
    defaults = ModbusEndpoint("rtu")
    return ModbusEndpoint("rtu", port=target, unit=unit, parity=parity, baud=ints.get("baud", defaults.baud),
                          bytesize=ints.get("bytesize", defaults.bytesize),
                          stopbits=ints.get("stopbits", defaults.stopbits))


class ModbusTransport:
    """Async Modbus client; ``instrument`` names the station role in every error message."""

    def __init__(self, resource: str, *, timeout: float = 2.0, instrument: str = "") -> None:
        self.resource = resource
        self.timeout = timeout
        self.instrument = instrument
        self.endpoint = parse_resource(resource, instrument)
        self._tcp = self.endpoint.kind == "tcp"
        self._link: modbus_tcp.TcpLink | None = None  # modbus-tcp://
        self._serial: AsyncModbusSerialClient | None = None  # modbus-rtu://
        self._reads: dict[tuple[int, int, int], TcpRead] = {}  # prepared reads by (fc, address, count)

    @property
    def lost(self) -> bool:
        """True once an open TCP link is gone (the station re-opens the driver before its next run)."""
        return self._link is not None and self._link.down is not None

    async def open(self) -> None:
        """Connect within ``timeout``; ``ConnectError`` if refused or unreachable."""
        await self.close()  # re-opening after a lost link starts from a fresh client
        ep = self.endpoint
        if self._tcp:
            try:
                self._link = await asyncio.wait_for(modbus_tcp.connect(ep.host, int(ep.port), ep.unit),
                                                    reply_timeout(self.timeout))
            except (TimeoutError, OSError) as exc:
                failure = connect_failure(ep.host, ep.port, exc, within=self.timeout)
                raise ConnectError(failure, instrument=self.instrument, command="open") from None
            return
        # retries=0 and a client timeout above ours: our wait_for decides what a timeout is,
        # so no request silently takes (retries + 1) x timeout. reconnect_delay=0: a lost
        # link is reported (ConnectError), not papered over by background reconnects.
        client = AsyncModbusSerialClient(str(ep.port), baudrate=ep.baud, parity=ep.parity,
                                         bytesize=ep.bytesize, stopbits=ep.stopbits, timeout=self.timeout + 1.0,
                                         retries=0, reconnect_delay=0, name=self.instrument or "modbus")
        try:
            ok = await asyncio.wait_for(client.connect(), reply_timeout(self.timeout))
        except (TimeoutError, OSError) as exc:
            client.close()
            raise ConnectError(f"cannot connect to {self.resource}: {exc or 'timeout'}",
                               instrument=self.instrument) from None
        if not ok:
            client.close()
            raise ConnectError(f"cannot connect to {self.resource}", instrument=self.instrument)
        self._serial = client

    async def close(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None
        if self._serial is not None:
            self._serial.close()
            self._serial = None

    async def __aenter__(self) -> ModbusTransport:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # -- the Modbus function codes ----------------------------------------------------------
    async def read_coils(self, address: int, count: int) -> list[bool]:
        """FC1: ``count`` coils from ``address``."""
        if self._tcp:
            return await self.prepared_read(1, address, count).read()
        rsp = await self._call("read_coils", address, count, count=count)
        return [bool(b) for b in rsp.bits[:count]]

    async def read_discrete_inputs(self, address: int, count: int) -> list[bool]:
        """FC2: ``count`` discrete inputs from ``address``."""
        if self._tcp:
            return await self.prepared_read(2, address, count).read()
        rsp = await self._call("read_discrete_inputs", address, count, count=count)
        return [bool(b) for b in rsp.bits[:count]]

    async def read_holding(self, address: int, count: int) -> list[int]:
        """FC3: ``count`` raw 16-bit holding registers from ``address``."""
        if self._tcp:
            return await self.prepared_read(3, address, count).read()
        rsp = await self._call("read_holding_registers", address, count, count=count)
        return self._registers(list(rsp.registers), "read_holding", address, count)

    async def read_input(self, address: int, count: int) -> list[int]:
        """FC4: ``count`` raw 16-bit input registers from ``address``."""
        if self._tcp:
            return await self.prepared_read(4, address, count).read()
        rsp = await self._call("read_input_registers", address, count, count=count)
        return self._registers(list(rsp.registers), "read_input", address, count)

    async def write_coil(self, address: int, value: bool) -> None:
        """FC5: one coil."""
        if self._tcp:
            await self._tcp_call(5, "write_coil", address, bool(value))
        else:
            await self._call("write_coil", address, bool(value))

    async def write_coils(self, address: int, values: Sequence[bool]) -> None:
        """FC15: consecutive coils from ``address``."""
        if self._tcp:
            await self._tcp_call(15, "write_coils", address, [bool(v) for v in values])
        else:
            await self._call("write_coils", address, [bool(v) for v in values])

    async def write_register(self, address: int, value: int) -> None:
        """FC6: one raw 16-bit holding register."""
        if self._tcp:
            await self._tcp_call(6, "write_register", address, int(value))
        else:
            await self._call("write_register", address, int(value))

    async def write_registers(self, address: int, values: Sequence[int]) -> None:
        """FC16: consecutive raw 16-bit holding registers from ``address``."""
        if self._tcp:
            await self._tcp_call(16, "write_registers", address, [int(v) for v in values])
        else:
            await self._call("write_registers", address, [int(v) for v in values])

    # -- one bounded request over our Modbus TCP link, errors typed -------------------------
    async def _tcp_call(self, fc: int, function: str, address: int, arg: Any) -> None:
        """Write function ``fc`` (``function`` in messages) within ``timeout``, or a typed error.
        (Reads go through ``prepared_read``.)"""
        where = {"instrument": self.instrument, "command": f"{function}({address}, {arg!r})"}
        link = self._link
        if link is None:
            raise ConnectError("transport is not open", **where)
        self._check(function, address, arg, None, where)
        if fc in (5, 6):
            request = modbus_tcp.write_single_request(fc, address, arg)
        elif fc == 15:
            request = modbus_tcp.write_coils_request(address, arg)
        else:
            request = modbus_tcp.write_registers_request(address, arg)
        try:
            modbus_tcp.echo_reply(await link.request(request, self.timeout), request)
        except (TimeoutError, LinkDown, BadReply, ExceptionReply) as exc:
            raise self._tcp_error(exc, function, address, where) from None

    def prepared_read(self, fc: int, address: int, count: int) -> TcpRead:
        """The read FC1-FC4 of ``count`` items at ``address``, checked and encoded once (kept per
        transport); ``RangeError`` if no frame can carry it. Modbus TCP only."""
        key = (fc, address, count)
        read = self._reads.get(key)
        if read is None:
            if len(self._reads) >= _READS_KEPT:
                self._reads.clear()
            read = self._reads[key] = TcpRead(self, fc, address, count)
        return read

    def read_poll(self, fc: int, address: int, count: int) -> TcpRead | None:
        """A prepared read of the caller's own, to ``start`` from loop callbacks (a periodic
        poll); ``RangeError`` if no frame can carry it; None on RTU (no callback reads)."""
        return TcpRead(self, fc, address, count) if self._tcp else None

    def _tcp_error(self, exc: Exception, function: str, address: int, where: Where) -> InstrumentError:
        """The typed error for what the link raised (``TimeoutError``, ``LinkDown``, ``BadReply``,
        ``ExceptionReply``)."""
        if isinstance(exc, TimeoutError):
            return InstrumentTimeout(f"no reply within {self.timeout:g} s", **where)
        if isinstance(exc, LinkDown):
            return ConnectError(f"connection lost: {exc}", **where)
        if isinstance(exc, BadReply):
            return ProtocolError(f"bad reply: {exc}", **where)
        if isinstance(exc, ExceptionReply):
            return self._exception(function, address, exc.code, where)
        return ProtocolError(f"{type(exc).__name__}: {exc}", **where)

    # -- one bounded request, errors typed --------------------------------------------------
    async def _call(self, method: str, address: int, arg: object, **kw: int) -> Any:
        """``client.<method>(address, [arg,] ...)`` within ``timeout``; the reply or a typed error."""
        function = _NAMES.get(method, method)
        command = f"{function}({address}, {arg!r})"
        where = {"instrument": self.instrument, "command": command}
        client = self._serial
        if client is None:
            raise ConnectError("transport is not open", **where)
        self._check(function, address, arg, kw.get("count"), where)
        args = (address,) if "count" in kw else (address, arg)
        try:
            rsp = await asyncio.wait_for(
                getattr(client, method)(*args, device_id=self.endpoint.unit, **kw), reply_timeout(self.timeout))
        except TimeoutError:
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
            raise self._exception(function, address, int(getattr(rsp, "exception_code", 0) or 0), where)
        return rsp

    @staticmethod
    def _exception(function: str, address: int, code: int, where: Where) -> DeviceError:
        name = EXCEPTION_NAMES.get(code, "UNKNOWN_EXCEPTION")
        return DeviceError(f"{function} at address {address} answered Modbus exception {code} {name}",
                           code=code, **where)

    @staticmethod
    def _check(function: str, address: int, arg: object, count: int | None, where: Where) -> None:
        """Refuse what no Modbus frame can carry, before anything is sent."""
        # a write PDU carries its values beside address, quantity and byte count: fewer fit
        # in 253 bytes (spec v1.1b3: 1968 coils for FC15, 123 registers for FC16)
        limit = {"write_coils": 1968, "write_registers": 123}.get(
            function, 2000 if "coil" in function or "discrete" in function else 125)
        if count is not None:
            n = count
        else:
            n = len(arg) if isinstance(arg, list) else 1
        if not 0 <= address <= 0xFFFF or not 1 <= n <= limit or address + n > 0x10000:
            raise RangeError(f"{function}: address {address} + {n} item(s) outside the Modbus limits "
                             f"(address 0..65535, 1..{limit} items)", **where)
        values = arg if isinstance(arg, list) else [arg]
        if "register" in function and count is None and not all(isinstance(v, int) and 0 <= v <= 0xFFFF
                                                                 for v in values):
            raise RangeError(f"{function}: register values must be 0..65535, got {arg!r}", **where)

    def _registers(self, regs: list[int], function: str, address: int, count: int) -> list[int]:
        if len(regs) < count:
            raise ProtocolError(f"{function} at address {address}: {len(regs)} of {count} registers returned",
                                instrument=self.instrument, command=f"{function}({address}, {count})")
        return regs[:count]


class TcpRead:
    """One read (FC1-FC4) over a ``ModbusTransport``'s TCP link, checked and encoded once.

    ``await read()`` returns the ``count`` bits or registers; ``start(done)`` sends the same
    request without a task and calls ``done(values, None)`` or ``done(None, error)`` once,
    straight from the loop callback that settles it (reply, timeout timer, link loss), unless
    ``cancel()`` comes first. Errors are typed as every other call's. The fixture's interlock
    poll uses ``start``: a task's wake-ups around ``await read()`` took two of the five loop
    iterations a poll cost (135 us CPU per 50 ms poll, 31k polls in the reference run).
    """

    __slots__ = ("transport", "fc", "function", "address", "count", "request", "where", "_exchange", "_done")

    def __init__(self, transport: ModbusTransport, fc: int, address: int, count: int) -> None:
        self.transport = transport
        self.fc, self.function, self.address, self.count = fc, _READ_FUNCTIONS[fc], address, count
        self.where = {"instrument": transport.instrument, "command": f"{self.function}({address}, {count!r})"}
        transport._check(self.function, address, count, count, self.where)
        self.request = modbus_tcp.read_request(fc, address, count)
        self._exchange: modbus_tcp.Exchange | None = None
        self._done: ReadDone | None = None

    async def read(self) -> list[Any]:
        """The values read (bools for FC1/FC2, raw 16-bit registers for FC3/FC4), or a typed error."""
        t = self.transport
        link = t._link
        if link is None:
            raise ConnectError("transport is not open", **self.where)
        try:
            return self._values(await link.request(self.request, t.timeout))
        except (TimeoutError, LinkDown, BadReply, ExceptionReply) as exc:
            raise t._tcp_error(exc, self.function, self.address, self.where) from None

    def start(self, done: ReadDone) -> None:
        """Send the read now (or when the link's turn comes); ``done`` as the class says.

        Raises ``ConnectError`` at once if the transport is not open or its link is down, and
        ``RuntimeError`` if this read is already in flight (one at a time per prepared read).
        """
        t = self.transport
        link = t._link
        if link is None:
            raise ConnectError("transport is not open", **self.where)
        if self._exchange is not None:
            raise RuntimeError(f"{self.where['command']} is already in flight")
        try:
            self._exchange = link.submit(self.request, t.timeout, self._settle)
        except LinkDown as exc:
            raise t._tcp_error(exc, self.function, self.address, self.where) from None
        self._done = done

    def cancel(self) -> None:
        """Give up the read in flight, if any: ``done`` is not called, a late reply is dropped."""
        exchange, self._exchange, self._done = self._exchange, None, None
        if exchange is not None:
            exchange.cancel()

    def _settle(self, pdu: bytes | None, exc: Exception | None) -> None:
        done, self._exchange, self._done = self._done, None, None
        if done is None:  # cancelled: a late reply is dropped
            return
        try:
            if exc is not None:
                raise exc
            assert pdu is not None, "an exchange settles with its reply or an error"
            values = self._values(pdu)
        except (TimeoutError, LinkDown, BadReply, ExceptionReply) as err:
            done(None, self.transport._tcp_error(err, self.function, self.address, self.where))
        except InstrumentError as err:
            done(None, err)
        else:
            done(values, None)

    def _values(self, pdu: bytes) -> list[bool] | list[int]:
        fc, count = self.fc, self.count
        if fc <= 2:
            return modbus_tcp.bits_reply(pdu, fc, count)
        regs = modbus_tcp.registers_reply(pdu, fc)
        if len(regs) > count:
            raise BadReply(f"{len(regs)} registers in the reply to a read of {count}")
        return self.transport._registers(regs, self.function, self.address, count)
