"""The simulated ECU's UDS server, fed raw ISO-TP frames, on virtual time."""

from __future__ import annotations

import asyncio
import datetime as dt

import can
import pytest

from drivers.bms.security import xor_key
from sim.bms.ecu import DEFAULT, EXTENDED, EcuState
from sim.bms.isotp_link import IsoTpLink, stmin_seconds
from sim.bms.uds_server import UdsServer
from station.clock import run

REQ, RSP = 0x7E4, 0x7EC
XOR = 0x5AC3E1F0  # the level-1 constant in drivers/maps/did_table.yaml


def frame(*data: int, arb: int = REQ) -> can.Message:
    return can.Message(arbitration_id=arb, data=bytes(data).ljust(8, b"\xcc"), is_extended_id=False)


class Bench:
    """Plays the tester with hand-made frames; ``frames`` collects everything the ECU sent."""

    def __init__(self, ecu: EcuState | None = None, **kw) -> None:
        self.ecu = ecu or EcuState.from_table(seed=1)
        self.frames: list[can.Message] = []
        self.server = UdsServer(self.ecu, send=self.frames.append, **kw)

    async def settle(self, seconds: float = 0.0) -> None:
        await asyncio.sleep(seconds)
        for _ in range(5):
            await asyncio.sleep(0)

    def take(self) -> list[bytes]:
        out = [bytes(m.data) for m in self.frames]
        assert all(m.arbitration_id == RSP and len(m.data) == 8 for m in self.frames)
        self.frames.clear()
        return out

    async def ask(self, *payload: int) -> bytes | None:
        """Single-frame request -> the complete reply payload (FC sent for a long one)."""
        self.server.on_message(frame(len(payload), *payload))
        await self.settle()
        frames = self.take()
        if not frames:
            return None
        first = frames[0]
        if first[0] >> 4 == 0:
            assert len(frames) == 1
            return first[1 : 1 + first[0]]
        assert first[0] >> 4 == 1, first.hex()
        length = ((first[0] & 0xF) << 8) | first[1]
        self.server.on_message(frame(0x30, 0, 0))
        await self.settle()
        data = first[2:] + b"".join(f[1:] for f in self.take())
        return data[:length]

    async def unlock(self) -> None:
        assert await self.ask(0x10, 0x03) == bytes.fromhex("5003003201f4")
        seed = (await self.ask(0x27, 0x01))[2:]
        assert await self.ask(0x27, 0x02, *xor_key(seed, XOR)) == b"\x67\x02"


def on_virtual(coro_fn):
    """Run an async test body on the virtual-time loop (as a plain sync test)."""

    def test() -> None:
        run(coro_fn(), virtual=True)

    test.__name__ = test.__qualname__ = coro_fn.__name__
    test.__doc__ = coro_fn.__doc__
    return test


@on_virtual
async def test_read_long_did_is_segmented_padded_and_complete():
    t = Bench()
    t.server.on_message(frame(0x03, 0x22, 0xF1, 0x8C))
    await t.settle()
    (ff,) = t.take()
    assert ff[:5] == bytes([0x10, 19, 0x62, 0xF1, 0x8C])  # 3 + 16 bytes, nothing before our FC
    t.server.on_message(frame(0x30, 0, 0))
    await t.settle()
    cfs = t.take()
    assert [f[0] for f in cfs] == [0x21, 0x22]
    assert (ff[5:] + cfs[0][1:] + cfs[1][1:])[:16] == b"BMS2610010000042"
    assert cfs[1][7:] == b"\xcc"  # 19 bytes = 6 + 7 + 6: one padding byte at the end


@on_virtual
async def test_sender_honours_block_size_and_stmin():
    t = Bench()
    t.ecu.set_value("pack_serial", "X" * 20)
    t.server.on_message(frame(0x03, 0x22, 0xF1, 0xA2))  # 23-byte reply: FF + 3 CFs
    await t.settle()
    t.take()
    loop = asyncio.get_running_loop()
    start = loop.time()
    t.server.on_message(frame(0x30, 2, 20))  # two CFs per block, 20 ms apart
    await t.settle(0.1)
    assert [f[0] for f in t.take()] == [0x21, 0x22]
    t.server.on_message(frame(0x30, 2, 20))
    await t.settle(0.1)
    assert [f[0] for f in t.take()] == [0x23]
    assert loop.time() - start >= 0.02
    assert stmin_seconds(0xF3) == pytest.approx(0.0003)


@on_virtual
async def test_sender_gives_up_without_flow_control():
    t = Bench()
    t.server.on_message(frame(0x03, 0x22, 0xF1, 0x8C))
    await t.settle(1.5)  # N_Bs is 1 s
    assert len(t.take()) == 1 and t.server.aborted_replies == 1


@on_virtual
async def test_multi_frame_request_gets_flow_control_and_is_executed():
    t = Bench()
    await t.unlock()
    payload = bytes([0x2E, 0xF1, 0xA2]) + b"PK-2026-000000000777"
    t.server.on_message(frame(0x10, len(payload), *payload[:6]))
    await t.settle()
    assert t.take() == [bytes([0x30, 0, 0]).ljust(8, b"\xcc")]  # CTS, BS 0, STmin 0
    rest, sn = payload[6:], 1
    while rest:
        t.server.on_message(frame(0x20 | sn, *rest[:7]))
        rest, sn = rest[7:], sn + 1
    await t.settle()
    assert t.take() == [bytes([0x03, 0x6E, 0xF1, 0xA2]).ljust(8, b"\xcc")]
    assert t.ecu.value("pack_serial") == "PK-2026-000000000777"


@on_virtual
async def test_consecutive_frame_out_of_sequence_aborts_reception():
    t = Bench()
    link_calls: list[bytes] = []
    link = IsoTpLink(lambda m: None, REQ, RSP, link_calls.append)
    link.on_message(frame(0x10, 10, 1, 2, 3, 4, 5, 6))
    link.on_message(frame(0x22, 7, 8, 9, 10))  # SN 2 where 1 was due
    link.on_message(frame(0x21, 7, 8, 9, 10))
    assert link_calls == []
    link.on_message(frame(0x10, 10, 1, 2, 3, 4, 5, 6))
    link.on_message(frame(0x21, 7, 8, 9, 10))
    assert link_calls == [bytes(range(1, 11))]
    assert t.server.link.rx_id == REQ


@on_virtual
async def test_read_several_dids_and_unknown_ones():
    t = Bench()
    reply = await t.ask(0x22, 0xF1, 0xA0, 0x12, 0x34, 0xF1, 0x89)
    assert reply == b"\x62\xf1\xa0\x00\xf1\x8904.02.01"  # unknown 0x1234 skipped
    assert await t.ask(0x22, 0x12, 0x34) == b"\x7f\x22\x31"
    assert await t.ask(0x22, 0xF1) == b"\x7f\x22\x13"


@on_virtual
async def test_unknown_service_and_wrong_lengths():
    t = Bench()
    assert await t.ask(0xBA, 0x01) == b"\x7f\xba\x11"
    assert await t.ask(0x10) == b"\x7f\x10\x13"
    assert await t.ask(0x3E, 0x00, 0x00) == b"\x7f\x3e\x13"
    assert await t.ask(0x11, 0x01, 0x00) == b"\x7f\x11\x13"
    assert await t.ask(0x14, 0xFF, 0xFF) == b"\x7f\x14\x13"
    assert await t.ask(0x10, 0x05) == b"\x7f\x10\x12"


@on_virtual
async def test_session_reply_carries_p2_and_p2_star():
    t = Bench()
    assert await t.ask(0x10, 0x03) == bytes([0x50, 0x03, 0x00, 50, 0x01, 0xF4])  # 50 ms, 500 x 10 ms
    assert t.ecu.session == EXTENDED
    assert await t.ask(0x10, 0x81) is None  # suppressed positive reply, still executed
    assert t.ecu.session == DEFAULT


@on_virtual
async def test_services_refused_in_default_session():
    t = Bench()
    assert await t.ask(0x2E, 0xF1, 0xA0, 0x01) == b"\x7f\x2e\x7f"
    assert await t.ask(0x27, 0x01) == b"\x7f\x27\x7f"
    assert await t.ask(0x31, 0x01, 0x02, 0x03) == b"\x7f\x31\x7f"


@on_virtual
async def test_write_checks_writable_security_and_length():
    t = Bench()
    assert await t.ask(0x10, 0x03) is not None
    assert await t.ask(0x2E, 0xF1, 0xA0, 0x01) == b"\x7f\x2e\x33"  # locked
    assert await t.ask(0x2E, 0x12, 0x34, 0x01) == b"\x7f\x2e\x31"  # unknown DID
    assert await t.ask(0x2E, 0xF1, 0x8C, 0x41) == b"\x7f\x2e\x31"  # read-only DID
    assert await t.ask(0x2E, 0xF1, 0xA3, *b"ST01") == b"\x7f\x2e\x13"  # 8 bytes expected
    assert await t.ask(0x2E, 0xF1) == b"\x7f\x2e\x13"
    await t.unlock()
    assert await t.ask(0x2E, 0xF1, 0xA0, 0x01) == b"\x6e\xf1\xa0"
    assert await t.ask(0x2E, 0xF1, 0xA1, 0x20, 0x26, 0x13, 0x01) == b"\x7f\x2e\x31"  # month 13
    assert t.ecu.value("eol_flag") == 1


@on_virtual
async def test_wrong_keys_lock_out_for_ten_seconds():
    t = Bench()
    assert await t.ask(0x10, 0x03) is not None
    assert await t.ask(0x27, 0x02, 0, 0, 0, 0) == b"\x7f\x27\x24"  # key without a seed
    for nrc in (0x35, 0x35, 0x36):
        seed = (await t.ask(0x27, 0x01))[2:]
        assert len(seed) == 4 and any(seed)
        assert await t.ask(0x27, 0x02, *xor_key(seed, XOR ^ 1)) == bytes([0x7F, 0x27, nrc])
    assert await t.ask(0x27, 0x01) == b"\x7f\x27\x37"
    for _ in range(2):  # 9 s, kept in the session (S3 is 5 s)
        await t.settle(4.5)
        await t.ask(0x3E, 0x80)
    await t.settle(0.9)
    assert await t.ask(0x27, 0x01) == b"\x7f\x27\x37"
    await t.settle(0.2)
    seed = (await t.ask(0x27, 0x01))[2:]
    assert await t.ask(0x27, 0x02, *xor_key(seed, XOR)) == b"\x67\x02"
    assert await t.ask(0x27, 0x01) == b"\x67\x01\x00\x00\x00\x00"  # already unlocked: zero seed


@on_virtual
async def test_slow_routine_answers_pending_then_positive():
    t = Bench(pending_interval=0.4)
    loop = asyncio.get_running_loop()
    assert await t.ask(0x10, 0x03) is not None
    start = loop.time()
    t.server.on_message(frame(0x04, 0x31, 0x01, 0x02, 0x03))
    await t.settle()
    assert t.take() == [bytes([0x03, 0x7F, 0x31, 0x78]).ljust(8, b"\xcc")]
    assert await t.ask(0x31, 0x01, 0x02, 0x03) == b"\x7f\x31\x22"  # already running
    await t.settle(0.95)
    assert t.take() == [bytes([0x03, 0x7F, 0x31, 0x78]).ljust(8, b"\xcc")] * 2  # repeated at 0.4, 0.8 s
    await t.settle(0.1)
    assert t.take() == [bytes([0x05, 0x71, 0x01, 0x02, 0x03, 0x00]).ljust(8, b"\xcc")]
    assert loop.time() - start >= 1.0
    assert await t.ask(0x31, 0x03, 0x02, 0x03) == b"\x71\x03\x02\x03\x00"
    assert await t.ask(0x31, 0x02, 0x02, 0x03) == b"\x7f\x31\x24"  # not running any more
    assert await t.ask(0x31, 0x01, 0x09, 0x99) == b"\x7f\x31\x31"
    assert await t.ask(0x31, 0x01, 0x02, 0x04) == b"\x71\x01\x02\x04\x00"  # fast routine


@on_virtual
async def test_s3_timeout_drops_to_default_session_and_relocks():
    t = Bench()
    loop = asyncio.get_running_loop()
    await t.unlock()
    for _ in range(3):  # 3 x 4 s kept alive by suppressed tester present
        await t.settle(4.0)
        assert await t.ask(0x3E, 0x80) is None
    assert t.ecu.session == EXTENDED and t.ecu.unlocked_level == 1
    assert await t.ask(0x3E, 0x00) == b"\x7e\x00"
    before = loop.time()
    await t.settle(4.9)
    assert t.ecu.session == EXTENDED
    await t.settle(0.2)
    assert t.ecu.session == DEFAULT and t.ecu.unlocked_level == 0
    assert loop.time() - before < 5.2


@on_virtual
async def test_eol_data_persists_across_hard_reset():
    t = Bench()
    await t.unlock()
    assert await t.ask(0x2E, 0xF1, 0xA1, 0x20, 0x26, 0x11, 0x25) == b"\x6e\xf1\xa1"
    assert await t.ask(0x11, 0x01) == b"\x51\x01"
    assert t.ecu.session == DEFAULT and t.ecu.unlocked_level == 0 and t.ecu.resets == 1
    assert await t.ask(0x22, 0xF1, 0xA1) == b"\x62\xf1\xa1\x20\x26\x11\x25"
    assert t.ecu.value("eol_date") == dt.date(2026, 11, 25)
    assert await t.ask(0x10, 0x03) is not None
    assert await t.ask(0x2E, 0xF1, 0xA1, 0, 0, 0, 0) == b"\x7f\x2e\x33"  # relocked by the reset


@on_virtual
async def test_dtcs_by_mask_and_clear():
    t = Bench(EcuState.from_table(dtcs=[(0x0A9B17, 0x09), (0x0C0100, 0x08)]))
    assert await t.ask(0x19, 0x02, 0x01) == b"\x59\x02\xff\x0a\x9b\x17\x09"
    reply = await t.ask(0x19, 0x02, 0xFF)
    assert reply == b"\x59\x02\xff\x0a\x9b\x17\x09\x0c\x01\x00\x08"
    assert await t.ask(0x19, 0x01, 0x08) == b"\x59\x01\xff\x01\x00\x02"
    assert await t.ask(0x19, 0x42, 0x08) == b"\x7f\x19\x12"
    assert await t.ask(0x14, 0x12, 0x34, 0x56) == b"\x7f\x14\x31"
    assert await t.ask(0x14, 0xFF, 0xFF, 0xFF) == b"\x54"
    assert await t.ask(0x19, 0x02, 0xFF) == b"\x59\x02\xff"


def test_identity_overrides_are_fault_hooks():
    ecu = EcuState.from_table(values={"sw_version": "09.99.00", 0xF18C: "SN1"})
    assert ecu.value(0xF189) == "09.99.00"
    assert ecu.dids[0xF18C] == b"SN1".ljust(16, b" ")
    with pytest.raises(KeyError, match="no DID named"):
        ecu.set_value("nope", 1)
