"""DbcBms on the project's DBC: exact request frames, cyclic request, live values, staleness."""

from __future__ import annotations

import asyncio

import can
import cantools
import pytest

from drivers.bms.dbc_bms import DbcBms
from drivers.bms.signals import MAPS
from drivers.capabilities import Bms, SafeAction, StateFinding
from drivers.errors import ConnectError, InstrumentError, InstrumentTimeout, RangeError, StaleSignalError
from drivers.testing.can import ExpectedFrames, Rx, Tx
from drivers.testing.message import ExchangeMismatch
from station.clock import run

DB = cantools.database.load_file(str(MAPS / "eol_bms.dbc"))
REQ = 0x200
STANDBY = "00 00 00 00 00 00 00 00"


def make(frames, **options) -> tuple[DbcBms, ExpectedFrames]:
    port = ExpectedFrames(frames)
    opts = {"cells": 8, "temperature_sensors": 4, **options}
    return DbcBms("bms", "can://station_loop/T", options=opts, transport=port), port


def encode(name: str, **values) -> bytes:
    message = DB.get_message_by_name(name)
    data = {s.name: 0 for s in message.signals if not s.multiplexer_ids}
    data.update(values)
    return bytes(message.encode(data, strict=False))


def test_constructor_and_open_are_silent_and_it_is_a_bms():
    async def main():
        bms, port = make([])
        assert isinstance(bms, Bms)
        await bms.open()
        await asyncio.sleep(1.0)
        await bms.close()
        port.assert_done()

    run(main(), virtual=True)


@pytest.mark.parametrize(("call", "data"), [
    (lambda b: b.request_mode("normal"), "01 00 00 00 00 00 00 00"),
    (lambda b: b.request_mode("charge"), "02 00 00 00 00 00 00 00"),
    (lambda b: b.request_mode("discharge"), "03 00 00 00 00 00 00 00"),
    (lambda b: b.set_balancing(True), "08 00 00 00 00 00 00 00"),
    (lambda b: b.set_insulation_monitor(False), "10 00 00 00 00 00 00 00"),
])
def test_each_request_encodes_byte_by_byte(call, data):
    async def main():
        bms, port = make([Tx(REQ, data)])
        await bms.open()
        await call(bms)
        await bms.close()  # before the first cyclic repeat
        port.assert_done()

    run(main(), virtual=True)


def test_request_combines_mode_balancing_and_monitor_and_repeats_every_100_ms():
    async def main():
        bms, port = make([Tx(REQ, "02 00 00 00 00 00 00 00"), Tx(REQ, "0A 00 00 00 00 00 00 00"),
                          Tx(REQ, "1A 00 00 00 00 00 00 00")]
                         + [Tx(REQ, "1A 00 00 00 00 00 00 00")] * 3 + [Tx(REQ, STANDBY)])
        await bms.open()
        await bms.request_mode("charge")
        await bms.set_balancing(True)
        await bms.set_insulation_monitor(False)
        await asyncio.sleep(0.35)  # exactly three repeats: at 0.1, 0.2, 0.3 s
        done = await bms.safe_state()
        await asyncio.sleep(1.0)  # default request held: no more repeats
        port.assert_done()
        await bms.close()
        return done

    done = run(main(), virtual=True)
    # no state frame ever received: the requests went out, nothing confirms them
    assert [a.confirmed for a in done] == [False, False, False, True]
    assert done[0] == SafeAction("requested standby (contactors open): BMS silent, never reported its contactors, "
                                 "not confirmed", False, bus_settles=True)
    assert all(a.bus_settles for a in done[:3])  # silent: the independent bus reading decides
    assert done[3] == SafeAction("cyclic request stopped", True)


def test_standby_stops_the_cyclic_request_and_safe_state_is_idempotent():
    async def main():
        bms, port = make([Tx(REQ, "01 00 00 00 00 00 00 00"), Tx(REQ, STANDBY), Tx(REQ, STANDBY), Tx(REQ, STANDBY)])
        assert await bms.safe_state() == [SafeAction("not open, no request sent", False)]
        await bms.open()
        await bms.request_mode("normal")
        await bms.request_mode("standby")
        await asyncio.sleep(0.5)
        first, second = await bms.safe_state(), await bms.safe_state()
        port.assert_done()
        return first, second

    first, second = run(main(), virtual=True)
    assert first == second


def test_invalid_mode_is_refused_before_any_frame():
    async def main():
        bms, port = make([])
        await bms.open()
        with pytest.raises(RangeError, match="bms: BMS mode 'precharge' not one of"):
            await bms.request_mode("precharge")
        port.assert_done()

    run(main(), virtual=True)


def test_an_unexpected_frame_fails_the_exchange():
    async def main():
        bms, port = make([Tx(REQ, "02 00 00 00 00 00 00 00")])
        await bms.open()
        with pytest.raises(ExchangeMismatch, match=r"expected 0x200 \[02 .*got 0x200 \[01"):
            await bms.request_mode("normal")
        with pytest.raises(ExchangeMismatch):
            port.assert_done()

    run(main(), virtual=True)


def test_live_values_decode_scale_and_go_stale_after_three_cycles():
    state = encode("EOL_BmsState", BmsState=2, ContactorMainPlus=1, ContactorMainMinus=1, HvilClosed=1,
                   ImdEnabled=1, ImdResistance=2_000_000, ErrorFlags=0x10)
    pack = encode("EOL_PackValues", PackVoltage=401.25, PackCurrent=-120.5, BusVoltage=400.0, PackPower=-48350)

    async def main():
        loop = asyncio.get_running_loop()
        bms, port = make([Rx(0x300, state), Rx(0x301, pack)])
        seen = []
        bms.add_listener(lambda name, value: seen.append(name))
        with pytest.raises(ConnectError):
            bms.signal("pack_voltage")
        await bms.open()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        values = {n: bms.signal(n) for n in ("pack_voltage", "pack_current", "bus_voltage", "pack_power",
                                             "contactor_main_plus", "contactor_precharge", "hvil_closed",
                                             "imd_resistance", "error_flags")}
        assert bms.state() == "normal"
        await asyncio.sleep(0.29)
        assert bms.signal("pack_voltage") == values["pack_voltage"]  # 0.29 s < 3 x 100 ms
        await asyncio.sleep(0.02)
        with pytest.raises(StaleSignalError, match=r"bms: signal pack_voltage is stale: last received 0\.31\d* s ago"):
            bms.signal("pack_voltage")
        with pytest.raises(StaleSignalError, match="soc never received"):
            bms.signal("soc")
        with pytest.raises(InstrumentError, match="'volts' is not in the signal map"):
            bms.signal("volts")
        port.assert_done()
        return values, seen, loop.time()

    values, seen, _ = run(main(), virtual=True)
    assert values == {"pack_voltage": 401.25, "pack_current": -120.5, "bus_voltage": 400.0, "pack_power": -48350.0,
                      "contactor_main_plus": 1.0, "contactor_precharge": 0.0, "hvil_closed": 1.0,
                      "imd_resistance": 2_000_000.0, "error_flags": 16.0}
    assert "pack_voltage" in seen and "bms_state" in seen


def test_cells_come_from_multiplexed_frames_and_wake_needs_them_all():
    msg = DB.get_message_by_name("EOL_CellVoltages")
    frames = [bytes(msg.encode({"CellVoltages_Mux": m, **{f"CellVoltage_{4 * m + k:03d}": 3.7 + 0.001 * (4 * m + k)
                                                          for k in range(4)}})) for m in range(2)]

    async def main():
        bms, port = make([], cells=8, temperature_sensors=0)
        await bms.open()
        port.inject(0x310, frames[0])
        await asyncio.sleep(0.01)
        with pytest.raises(StaleSignalError, match="cell_voltage_4 never received"):
            bms.cell_voltages()
        # frames from before wake() was called do not count: the BMS must be sending now
        with pytest.raises(InstrumentTimeout, match=r"bms: BMS not awake after 0\.05 s: no .*EOL_BmsState.*"
                                                    r"EOL_CellVoltages"):
            await bms.wake(0.05)
        port.inject(0x310, frames[1])
        await asyncio.sleep(0.001)
        return bms.cell_voltages()

    cells = run(main(), virtual=True)
    assert cells == pytest.approx([3.7 + 0.001 * i for i in range(8)], abs=1e-9)


def test_uds_methods_need_the_uds_option():
    async def main():
        bms, _ = make([])
        await bms.open()
        with pytest.raises(InstrumentError, match=r"bms: UDS is not configured.*read DID 0xf18c"):
            await bms.uds_read(0xF18C)
        ident = await bms.identify()
        await bms.close()
        return ident

    bms_opts = run(main(), virtual=True)
    assert (bms_opts.maker, bms_opts.serial) == ("unknown", "")


def test_identity_falls_back_to_options():
    async def main():
        bms, _ = make([], maker="ACME", model="BMS-7", serial="S1", firmware="1.0")
        await bms.open()
        return await bms.identify()

    ident = run(main(), virtual=True)
    assert (ident.maker, ident.model, ident.serial, ident.firmware) == ("ACME", "BMS-7", "S1", "1.0")


def test_expected_frames_fails_on_extra_missing_and_extended_mismatch():
    async def main():
        extra = ExpectedFrames([])
        with pytest.raises(ExchangeMismatch, match="extra frame 0x200"):
            extra.send(can.Message(arbitration_id=0x200, data=bytes(8), is_extended_id=False))
        with pytest.raises(ExchangeMismatch):
            extra.assert_done()  # the mismatch is remembered even if a task swallowed it
        missing = ExpectedFrames([Tx(0x200, STANDBY), Tx(0x201, "01")])
        missing.send(can.Message(arbitration_id=0x200, data=bytes(8), is_extended_id=False))
        with pytest.raises(ExchangeMismatch, match="1 expected frame\\(s\\) never exchanged: 0x201 \\[01\\]"):
            missing.assert_done()
        extended = ExpectedFrames([Tx(0x200, STANDBY, extended=True)])
        with pytest.raises(ExchangeMismatch, match="expected 0x200x"):
            extended.send(can.Message(arbitration_id=0x200, data=bytes(8), is_extended_id=False))

    run(main(), virtual=True)


class _FlakyPort:
    """A CAN port that records (loop time, data) per frame and fails the sends listed in ``fail``."""

    def __init__(self, fail: set[int]) -> None:
        self.sent: list[tuple[float, bytes]] = []
        self.fail = fail

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def add_listener(self, listener) -> None:
        pass

    def remove_listener(self, listener) -> None:
        pass

    def send(self, msg: can.Message, *, command: str = "") -> None:
        self.sent.append((asyncio.get_running_loop().time(), bytes(msg.data)))
        if len(self.sent) in self.fail:
            raise InstrumentError("CAN send failed", instrument="bms")


def test_a_failed_cyclic_send_ends_the_cycle_until_the_next_command():
    async def main():
        loop = asyncio.get_running_loop()
        reported = []
        loop.set_exception_handler(lambda _loop, context: reported.append(context.get("exception")))
        port = _FlakyPort(fail={3})  # the second repeat fails
        bms = DbcBms("bms", "can://station_loop/T", options={"cells": 8, "temperature_sensors": 4},
                     transport=port)
        await bms.open()
        start = loop.time()
        await bms.request_mode("normal")
        await asyncio.sleep(0.55)
        stopped = len(port.sent)
        cause = bms.cycle_error  # kept with the driver, not raised into the loop's error handler
        await bms.set_balancing(True)  # restarts the cycle
        await asyncio.sleep(0.25)
        await bms.safe_state()
        await asyncio.sleep(0.5)
        await bms.close()
        return [(round(t - start, 6), data[0]) for t, data in port.sent], stopped, reported, cause

    sent, stopped, reported, cause = run(main(), virtual=True)
    assert stopped == 3 and reported == [] and isinstance(cause, InstrumentError)
    assert sent == [(0.0, 0x01), (0.1, 0x01), (0.2, 0x01),  # the failed one, then silence
                    (0.55, 0x09), (0.65, 0x09), (0.75, 0x09),  # restarted: every 100 ms again
                    (0.8, 0x00)]  # safe state: standby, no repeat after it


def state_frame(*, plus: int = 0, minus: int = 0, pre: int = 0, state: int = 0, imd: int = 1, bal: int = 0) -> tuple:
    return (0x300, encode("EOL_BmsState", BmsState=state, ContactorMainPlus=plus, ContactorMainMinus=minus,
                            ContactorPrecharge=pre, ImdEnabled=imd, BalancingActive=bal))


async def _cycle_state(port, frames, period=0.1):
    """Deliver ``frames`` one per ``period`` s, as the BMS's cyclic state message."""
    for frame in frames:
        port.inject(*frame)
        await asyncio.sleep(period)


def test_safe_state_is_confirmed_by_a_state_frame_showing_the_contactors_open():
    async def main():
        bms, port = make([Tx(REQ, "01 00 00 00 00 00 00 00"), Tx(REQ, STANDBY)])
        await bms.open()
        await bms.request_mode("normal")
        port.inject(*state_frame(plus=1, minus=1, state=2))  # awake, contactors closed
        await asyncio.sleep(0.05)
        # the BMS opens its contactors 0.2 s after the standby request
        feeder = asyncio.create_task(_cycle_state(port, [state_frame(plus=1, minus=1, state=2),
                                                         state_frame(plus=1, minus=1, state=2),
                                                         state_frame()]))
        done = await bms.safe_state()
        waited = asyncio.get_running_loop().time()
        await feeder
        port.assert_done()
        return done, waited

    done, waited = run(main(), virtual=True)
    assert done == [SafeAction("requested standby: contactors open (BMS state frame)", True),
                    SafeAction("insulation monitor enabled (BMS state frame)", True),
                    SafeAction("balancing off (BMS state frame)", True),
                    SafeAction("cyclic request stopped", True)]
    assert waited == pytest.approx(0.25, abs=0.02)  # returned as soon as the open frame came


def test_safe_state_with_contactors_staying_closed_is_not_confirmed_within_the_bound():
    async def main():
        bms, port = make([Tx(REQ, STANDBY)], confirm_within=0.5)
        await bms.open()
        port.inject(*state_frame(plus=1, minus=1, pre=0, state=2))
        await asyncio.sleep(0.05)
        feeder = asyncio.create_task(_cycle_state(port, [state_frame(plus=1, minus=1, state=2)] * 8))
        loop = asyncio.get_running_loop()
        start = loop.time()
        done = await bms.safe_state()
        took = loop.time() - start
        await feeder
        return done, took

    done, took = run(main(), virtual=True)
    assert done[0] == SafeAction("requested standby: contactors STILL CLOSED (main_plus, main_minus; BMS state frame)", False,
                                 bus_settles=True)  # the independent bus reading decides whether it is safe
    assert 0.5 <= took < 0.6


def test_safe_state_of_a_bms_that_falls_silent_is_not_confirmed():
    async def main():
        bms, port = make([Tx(REQ, STANDBY)])
        await bms.open()
        port.inject(*state_frame(plus=1, minus=1, state=2))  # awake a moment ago, then nothing more
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        start = loop.time()
        done = await bms.safe_state()
        return done, loop.time() - start

    done, took = run(main(), virtual=True)
    # its last word was "contactors closed": a silent BMS cannot be trusted to have opened them
    assert done[0].action.startswith("requested standby: contactors STILL CLOSED (main_plus, main_minus; BMS silent; "
                                     "its last state frame, 0.")
    assert not done[0].confirmed and done[1].confirmed and done[2].confirmed  # monitor on, no balancing: as last said
    assert took == pytest.approx(0.3, abs=0.02)  # 3 cycle times of silence after the request end the wait


def test_safe_state_of_a_bms_asleep_after_reporting_its_contactors_open_is_confirmed_by_that_frame():
    async def main():
        bms, port = make([Tx(REQ, STANDBY)])
        await bms.open()
        port.inject(*state_frame())  # standby, contactors open, monitor on: then LV power off
        await asyncio.sleep(2.0)
        loop = asyncio.get_running_loop()
        start = loop.time()
        done = await bms.safe_state()
        return done, loop.time() - start

    done, took = run(main(), virtual=True)
    assert done[0] == SafeAction("requested standby: contactors open (BMS silent; its last state frame, 2.0 s ago)",
                                 True)
    assert all(a.confirmed for a in done) and took == 0.0  # already silent: nothing to wait for


def test_energy_state_reads_a_fresh_state_frame():
    async def main():
        bms, port = make([])
        await bms.open()
        port.inject(*state_frame(plus=1, minus=1, state=2))
        await asyncio.sleep(0.5)  # that frame is old now: energy_state waits for a new one
        feeder = asyncio.create_task(_cycle_state(port, [state_frame(plus=0, minus=1, pre=1, state=1)]))
        found = await bms.energy_state()
        await feeder
        silent = await bms.energy_state()
        return found, silent

    found, silent = run(main(), virtual=True)
    assert found == [StateFinding("contactors", False, "contactors CLOSED: main_minus, precharge (BMS state precharge)")]
    assert silent[0].safe and silent[0].detail.startswith("BMS silent: no state frame")


def test_energy_state_of_an_open_bms_is_safe():
    async def main():
        bms, port = make([])
        await bms.open()
        feeder = asyncio.create_task(_cycle_state(port, [state_frame()]))
        found = await bms.energy_state()
        await feeder
        return found

    assert run(main(), virtual=True) == [StateFinding("contactors", True, "contactors open (BMS state standby)")]


def test_confirm_within_is_checked_at_construction():
    with pytest.raises(RangeError, match="confirm_within"):
        make([], confirm_within=10)
