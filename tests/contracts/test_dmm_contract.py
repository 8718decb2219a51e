"""DMM contract: each real driver, over its real transport, against its simulated peer.

Add an implementation by adding a bench factory to ``BENCHES``: it starts the simulated peer on
loopback for ``pack`` and returns ``(driver, peer)``; the peer offers ``behaviour``
("normal" | "hang" | "garbage") and ``received`` (lines it got).
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from drivers.capabilities import Dmm, Identity, SafeAction
from drivers.dmm.keysight_34465a import Keysight34465A
from drivers.errors import DeviceError, InstrumentTimeout, ProtocolError, RangeError
from sim.instruments.keysight_34465a import SimKeysightDmm
from sim.pack import PRESETS, Pack
from station.clock import run

DUE = dt.date(2027, 2, 28)


async def keysight_bench(pack: Pack, timeout: float):
    peer = SimKeysightDmm(pack, seed=11)
    address = await peer.start()
    port = address.rsplit(":", 1)[1]
    driver = Keysight34465A("dmm", f"TCPIP::127.0.0.1::{port}::SOCKET", timeout=timeout, calibration_due=DUE)
    return driver, peer


BENCHES = {"keysight_34465a": keysight_bench}


@pytest.fixture(params=sorted(BENCHES))
def bench(request):
    return BENCHES[request.param]


def on_bench(bench, body, *, timeout: float = 1.0, virtual: bool = True, live: bool = True):
    """Run ``body(driver, peer, pack)`` with the driver open; ``live`` closes the contactors."""

    async def main():
        pack = Pack(PRESETS["car-400"], seed=5)
        if live:
            pack.set_contactor("main_minus", True)
            pack.set_contactor("main_plus", True)
        driver, peer = await bench(pack, timeout)
        try:
            async with driver:
                return await body(driver, peer, pack)
        finally:
            await peer.stop()

    return run(main(), virtual=virtual)


def test_identify(bench):
    async def body(drv, peer, pack):
        assert isinstance(drv, Dmm)
        return await drv.identify()

    ident = on_bench(bench, body)
    assert isinstance(ident, Identity) and ident.model and ident.serial
    assert ident.calibration_due == DUE


def test_reads_the_pack_bus_voltage(bench):
    async def body(drv, peer, pack):
        fixed = await drv.measure_dc_voltage(1000, nplc=10)
        fast = await drv.measure_dc_voltage(1000, nplc=0.2)
        auto = await drv.measure_dc_voltage(None, nplc=1)
        return pack.bus_voltage(), fixed, fast, auto

    true, fixed, fast, auto = on_bench(bench, body)
    assert 300 < true < 420
    assert fixed == pytest.approx(true, abs=0.01)
    assert fast == pytest.approx(true, abs=0.05)
    assert auto == pytest.approx(true, abs=0.02)


def test_dead_bus_reads_near_zero(bench):
    async def body(drv, peer, pack):
        return await drv.measure_dc_voltage(1000, nplc=1)

    assert abs(on_bench(bench, body, live=False)) < 0.05


def test_overload_is_a_device_error(bench):
    async def body(drv, peer, pack):
        with pytest.raises(DeviceError, match="overload") as info:
            await drv.measure_dc_voltage(10, nplc=0.02)
        return info.value

    exc = on_bench(bench, body)
    assert exc.instrument == "dmm" and exc.command


def test_out_of_range_is_refused_before_any_byte(bench):
    async def body(drv, peer, pack):
        sent = len(peer.received)
        for range_v, nplc in ((3000, 10), (1000, 500), (1000, 0)):
            with pytest.raises(RangeError, match="dmm"):
                await drv.measure_dc_voltage(range_v, nplc=nplc)
        return len(peer.received) - sent

    assert on_bench(bench, body) == 0


def test_safe_state_is_idempotent(bench):
    async def body(drv, peer, pack):
        return await drv.safe_state(), await drv.safe_state()

    first, second = on_bench(bench, body)
    assert first == second and all(isinstance(a, SafeAction) and a.confirmed for a in first)


@pytest.mark.parametrize("behaviour, error", [("hang", InstrumentTimeout), ("garbage", ProtocolError)])
def test_faulty_peer_raises_typed_error_naming_the_command(bench, behaviour, error):
    async def body(drv, peer, pack):
        await drv.measure_dc_voltage(1000, nplc=0.02)  # configured: the next call only reads
        peer.behaviour = behaviour
        start = time.monotonic()
        with pytest.raises(error) as info:
            await drv.measure_dc_voltage(1000, nplc=0.02)
        return info.value, time.monotonic() - start

    exc, took = on_bench(bench, body, timeout=0.3, virtual=False)
    assert exc.instrument == "dmm" and exc.command in str(exc)
    assert took < 0.3 + 0.3
