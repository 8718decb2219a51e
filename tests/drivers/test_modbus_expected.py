"""The exact-exchange Modbus fake itself: it must catch every kind of deviation."""

from __future__ import annotations

import pytest

from drivers.errors import DeviceError
from drivers.testing.message import ExchangeMismatch
from drivers.testing.modbus import ExpectedRegisters


async def test_matching_exchange_returns_replies_and_raises_injected_errors():
    t = ExpectedRegisters([
        ("read_input", 0, 2, [1, 2]),
        ("write_coil", 3, True, DeviceError("refused", code=3)),
        ("write_registers", 4, (5, 6)),
    ])
    async with t:
        assert await t.read_input(0, 2) == [1, 2]
        with pytest.raises(DeviceError):
            await t.write_coil(3, True)
        await t.write_registers(4, [5, 6])


@pytest.mark.parametrize("ops, call", [
    ([("write_coil", 0, True)], lambda t: t.write_coil(1, True)),  # wrong address
    ([("write_coil", 0, True)], lambda t: t.write_coil(0, 1)),  # int is not a coil value
    ([("write_register", 0, 1)], lambda t: t.write_registers(0, [1])),  # wrong function
    ([("read_holding", 0, 2, [1, 2])], lambda t: t.read_holding(0, 1)),  # wrong count
    ([], lambda t: t.read_coils(0, 1)),  # extra
    ([("read_coils", 0, 2, [True])], lambda t: t.read_coils(0, 2)),  # reply of the wrong length
])
async def test_deviations_fail(ops, call):
    t = ExpectedRegisters(ops)
    with pytest.raises(ExchangeMismatch):
        await call(t)


async def test_out_of_order_and_unread_fail():
    t = ExpectedRegisters([("write_coil", 0, True), ("write_coil", 1, True)])
    with pytest.raises(ExchangeMismatch):
        await t.write_coil(1, True)
    t = ExpectedRegisters([("write_coil", 0, True), ("write_coil", 1, True)])
    await t.write_coil(0, True)
    with pytest.raises(ExchangeMismatch, match="never happened"):
        t.assert_done()
    with pytest.raises(ExchangeMismatch, match="unknown operation"):
        ExpectedRegisters([("read_holdings", 0, 1, [0])])
