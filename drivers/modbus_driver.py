"""What every Modbus driver shares: the resource checked at construction, the transport made
from it in ``open()`` (unless one was injected, as exact-exchange tests do), closed by
``close()``. Drivers subclass ``ModbusDriver`` and call ``super().open()`` first."""

from __future__ import annotations

from typing import Any

from drivers.base import Driver
from drivers.maps.regmap import Field, RegisterMap
from drivers.transports.modbus import ModbusTransport, parse_resource


class ModbusDriver(Driver):
    """A register-mapped instrument over Modbus TCP/RTU; the constructor only stores config."""

    TRANSPORT = "modbus"
    map: RegisterMap[Field]  # each driver loads its own in the constructor (a file, checked there)

    def __init__(self, name: str, resource: str, **kw: Any) -> None:
        super().__init__(name, resource, **kw)
        parse_resource(resource, name)  # a malformed resource fails at config load

    async def open(self) -> None:
        """Connect (a TCP connection or the serial line of the resource)."""
        if self.transport is None:
            self.transport = ModbusTransport(self.resource, timeout=self.timeout, instrument=self.name)
        await self.transport.open()

    async def close(self) -> None:
        if self.transport is not None:
            await self.transport.close()
