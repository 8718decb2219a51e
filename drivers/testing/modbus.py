"""Exact-exchange fake for the Modbus transport (register level).

``ExpectedRegisters([...])`` has ``ModbusTransport``'s method surface. Each entry is one
operation, in order::

    ("read_input", address, count, [reply registers])     # also read_holding/read_coils/
                                                           # read_discrete_inputs (bools)
    ("write_register", address, value)                    # also write_coil/write_coils/
    ("write_registers", address, [values])                #      write_registers
    ("write_coil", address, True, DeviceError(...))       # 4th item: raised instead

A reply that is an exception instance is raised instead of returned. A wrong, extra,
out-of-order or (``assert_done``) unread operation fails the test; an empty list proves a
constructor silent. Registers are raw 16-bit words; coils are bools.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any

from drivers.testing.message import ExchangeMismatch

READS = ("read_coils", "read_discrete_inputs", "read_holding", "read_input")
WRITES = ("write_coil", "write_coils", "write_register", "write_registers")


def _norm(value: object) -> object:
    """Compare lists and tuples alike; bools stay bools for coils."""
    return list(value) if isinstance(value, (list, tuple)) else value


class ExpectedRegisters:
    def __init__(self, operations: Iterable[tuple[Any, ...]], resource: str = "expected-modbus://") -> None:
        self.resource = resource
        self._ops = list(operations)
        for op in self._ops:
            if not op or op[0] not in READS + WRITES:
                raise ExchangeMismatch(f"unknown operation {op!r}; valid: {', '.join(READS + WRITES)}")
        self._index = 0
        self.opened = False

    def _next(self, function: str, address: int, arg: object) -> tuple[Any, ...]:
        got = (function, address, _norm(arg))
        if self._index >= len(self._ops):
            raise ExchangeMismatch(f"extra operation {got!r}: no more operations were expected")
        op = self._ops[self._index]
        want = (op[0], op[1], _norm(op[2]) if len(op) > 2 else None)
        if want != got or any(type(a) is not type(b) for a, b in zip(_flat(want[2]), _flat(got[2]))):
            raise ExchangeMismatch(f"operation #{self._index}: expected {want!r}, got {got!r}")
        self._index += 1
        return op

    async def _read(self, function: str, address: int, count: int) -> list[Any]:
        op = self._next(function, address, count)
        reply = op[3] if len(op) > 3 else None
        if isinstance(reply, BaseException):
            raise reply
        if not isinstance(reply, (list, tuple)) or len(reply) != count:
            raise ExchangeMismatch(f"{op!r}: the reply must be a list of {count} values")
        return list(reply)

    async def _write(self, function: str, address: int, arg: object) -> None:
        op = self._next(function, address, arg)
        if len(op) > 3 and isinstance(op[3], BaseException):
            raise op[3]

    async def open(self) -> None:
        self.opened = True

    async def close(self) -> None:
        self.opened = False

    async def read_coils(self, address: int, count: int) -> list[bool]:
        return await self._read("read_coils", address, count)

    async def read_discrete_inputs(self, address: int, count: int) -> list[bool]:
        return await self._read("read_discrete_inputs", address, count)

    async def read_holding(self, address: int, count: int) -> list[int]:
        return await self._read("read_holding", address, count)

    async def read_input(self, address: int, count: int) -> list[int]:
        return await self._read("read_input", address, count)

    async def write_coil(self, address: int, value: bool) -> None:
        await self._write("write_coil", address, value)

    async def write_coils(self, address: int, values: Sequence[bool]) -> None:
        await self._write("write_coils", address, values)

    async def write_register(self, address: int, value: int) -> None:
        await self._write("write_register", address, value)

    async def write_registers(self, address: int, values: Sequence[int]) -> None:
        await self._write("write_registers", address, values)

    def assert_done(self) -> None:
        """Fail if any expected operation never happened."""
        if self._index != len(self._ops):
            left = self._ops[self._index :]
            raise ExchangeMismatch(f"{len(left)} expected operation(s) never happened: {left!r}")

    async def __aenter__(self) -> ExpectedRegisters:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if exc_type is None:
            self.assert_done()


def _flat(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else [value]
