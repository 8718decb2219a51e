"""Fuzz the simulator's servers on the wire: random bytes and lines to the SCPI servers, the ATEQ
line server and the Modbus TCP servers, random CAN frames to the UDS server. Each answers with
its protocol's error (SCPI error queue, ``ER:``, Modbus exception, UDS NRC) and keeps serving:
a valid request afterwards still gets a valid reply.

Seeded ``random`` generators (not hypothesis) so one started bench takes hundreds of messages.
"""

from __future__ import annotations

import asyncio
import random
import struct

import can
import pytest

from sim.bench import SimBench
from sim.bms.ecu import EcuState
from sim.bms.uds_server import UdsServer
from station.clock import run

SCPI_WORDS = ["*IDN?", "*CLS", "*RST", "SYST:ERR?", "VOLT", "CURR", "OUTP", "MEAS:VOLT?", "CONF:VOLT:DC", "READ?",
              "SAFE:STEP", "SAFE:STAR", "SAFE:STAT?", "SAFE:RES:ALL?", ":", ";", "?", "1e999", "-1", "nan", "AUTO",
              "SAFE:STEP 99999:IR", "VOLT:DC:NPLC", "CURR:LIM:NEG", "\x00", "\xff", "é", "\t", "'", '"']
LINES = 400


def junk_line(rng: random.Random) -> bytes:
    """One garbage line: random bytes, or SCPI-shaped nonsense with stray arguments and separators."""
    kind = rng.random()
    if kind < 0.3:
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80))).replace(b"\n", b"")
    elif kind < 0.9:
        words = [rng.choice(SCPI_WORDS) + rng.choice(["", " ", ":", " 1", " 1e9", ",", "?"]) for _ in range(rng.randrange(1, 6))]
        body = rng.choice([" ", ";", ":", ""]).join(words).encode("utf-8", "replace")
    else:
        body = rng.choice([b"X" * 5000, b";" * 2000, b"SAFE:STEP 1:IR " + b"9" * 3000, b"*IDN?" * 500])
    return body + rng.choice([b"\n", b"\r\n"])


async def _connect(address: str):
    host, port = address.rsplit(":", 1)
    return await asyncio.open_connection(host, int(port))


async def _ask(reader, writer, line: str, timeout: float = 5.0) -> str:
    writer.write(line.encode() + b"\n")
    await writer.drain()
    return (await asyncio.wait_for(reader.readline(), timeout)).decode("ascii", "replace").strip()


async def _drain(reader, seconds: float = 0.5) -> None:
    """Read whatever replies the junk produced (the server may answer some junk queries)."""
    try:
        while await asyncio.wait_for(reader.read(65536), seconds):
            pass
    except TimeoutError:
        pass


@pytest.mark.parametrize("peer", ["F1.cycler", "F1.dmm", "safety"])
def test_scpi_servers_answer_errors_and_keep_serving(peer):
    async def main():
        bench = SimBench({"F1": "car-400"})
        endpoints = await bench.start()
        try:
            rng = random.Random(f"{peer}-1")
            reader, writer = await _connect(endpoints[peer])
            identity = await _ask(reader, writer, "*IDN?")
            await _ask(reader, writer, "*CLS;SYST:ERR?")
            writer.write(b"THIS:IS:NOT:SCPI 1\n")
            first_error = await _ask(reader, writer, "SYST:ERR?")
            for _ in range(LINES):
                writer.write(junk_line(rng))
            await writer.drain()
            await _drain(reader)
            await _ask(reader, writer, "*CLS;SYST:ERR?")
            again = await _ask(reader, writer, "*IDN?")
            writer.close()
            # a second client is served too (nothing above wedged the server)
            r2, w2 = await _connect(endpoints[peer])
            other = await _ask(r2, w2, "*IDN?")
            w2.close()
            return identity, first_error, again, other
        finally:
            await bench.stop()

    identity, first_error, again, other = run(main(), virtual=True)
    assert identity.count(",") == 3
    assert first_error.startswith("-113"), first_error  # Undefined header, in the error queue
    assert again == identity and other == identity


@pytest.mark.parametrize("peer", ["F1.cycler", "F1.dmm", "safety", "F1.leak"])
def test_line_servers_survive_an_overlong_line_and_binary(peer):
    """A 1 MB line with no newline and a burst of raw binary: the connection may be dropped,
    but the server accepts the next client and answers it."""
    async def main():
        bench = SimBench({"F1": "car-400"})
        endpoints = await bench.start()
        try:
            rng = random.Random(peer)
            _r, w = await _connect(endpoints[peer])
            w.write(b"A" * 1_000_000)
            w.write(bytes(rng.randrange(256) for _ in range(20_000)))
            try:
                await asyncio.wait_for(w.drain(), 5)
            except (TimeoutError, ConnectionError):
                pass
            w.close()
            await asyncio.sleep(0.1)
            reader, writer = await _connect(endpoints[peer])
            if peer == "F1.leak":
                reply = await _ask(reader, writer, "HELLO")
            else:
                reply = await _ask(reader, writer, "*IDN?")
            writer.close()
            return reply
        finally:
            await bench.stop()

    reply = run(main(), virtual=True)
    assert reply == "ER: UNKNOWN COMMAND" if peer == "F1.leak" else reply.count(",") == 3, reply


def test_ateq_server_answers_er_to_junk_then_runs_a_cycle():
    async def main():
        bench = SimBench({"F1": "car-400"})
        endpoints = await bench.start()
        try:
            rng = random.Random("ateq")
            reader, writer = await _connect(endpoints["F1.leak"])
            replies = []
            for _ in range(200):
                line = junk_line(rng)
                if line.strip() in (b"START", b"STOP") or not line.strip():
                    continue
                writer.write(line)
                await writer.drain()
                replies.append((await asyncio.wait_for(reader.readline(), 5)).decode("ascii", "replace").strip())
            result = await _ask(reader, writer, "START", timeout=120)  # 30 s cycle, virtual time
            writer.close()
            return replies, result
        finally:
            await bench.stop()

    replies, result = run(main(), virtual=True)
    assert len(replies) > 150 and set(replies) == {"ER: UNKNOWN COMMAND"}
    assert result.startswith("<01>:(OK):"), result


def _mbap(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


async def _modbus_exchange(reader, writer, frame: bytes, timeout: float = 2.0) -> bytes | None:
    writer.write(frame)
    await writer.drain()
    try:
        head = await asyncio.wait_for(reader.readexactly(7), timeout)
        (length,) = struct.unpack(">H", head[4:6])
        return await asyncio.wait_for(reader.readexactly(length - 1), timeout)
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
        return None


@pytest.mark.parametrize("peer", ["F1.fixture", "F1.cycler_modbus"])
def test_modbus_servers_answer_exceptions_and_keep_serving(peer):
    async def main():
        bench = SimBench({"F1": "car-400"})
        endpoints = await bench.start()
        try:
            rng = random.Random(peer)
            reader, writer = await _connect(endpoints[peer])
            valid = _mbap(1, 1, struct.pack(">BHH", 3, 0, 1))
            before = await _modbus_exchange(reader, writer, valid)
            answers = []
            for tid in range(2, 300):
                kind = rng.random()
                if kind < 0.5:  # well-framed, random function code / addresses / counts
                    pdu = bytes([rng.choice([1, 2, 3, 4, 5, 6, 15, 16, 0x2B, 0x55, 0x7F, 0x80, 0xFF])])
                    pdu += bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12)))
                    answers.append(await _modbus_exchange(reader, writer, _mbap(tid, 1, pdu), 0.5))
                else:  # unframed garbage: the server may drop the connection; reconnect
                    writer.write(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
                    await _drain(reader, 0.2)
                    writer.close()
                    reader, writer = await _connect(endpoints[peer])
            after = await _modbus_exchange(reader, writer, valid)
            writer.close()
            return before, answers, after
        finally:
            await bench.stop()

    before, answers, after = run(main(), virtual=True)
    assert before is not None and before[0] == 3
    assert after == before or (after is not None and after[0] == 3)  # the same valid read still works
    exceptions = [a for a in answers if a and a[0] & 0x80]
    assert len(exceptions) >= 30, answers[:20]
    assert all(a[1] in (1, 2, 3, 4) for a in exceptions)  # real Modbus exception codes


def test_uds_server_answers_nrc_to_random_frames_and_keeps_serving():
    req, rsp = 0x7E4, 0x7EC

    async def main():
        sent: list[can.Message] = []
        server = UdsServer(EcuState.from_table(seed=1), send=sent.append)
        rng = random.Random("uds")

        async def settle():
            for _ in range(5):
                await asyncio.sleep(0)

        nrcs = 0
        for _ in range(3000):
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 9)))
            if rng.random() < 0.5 and data:  # make it a well-formed single frame more often
                payload = data[1:8]
                data = bytes([len(payload)]) + payload
            server.on_message(can.Message(arbitration_id=rng.choice([req, req, 0x7DF, 0x123]), data=data,
                                          is_extended_id=False))
            await settle()
            nrcs += sum(1 for m in sent if len(m.data) >= 4 and m.data[0] <= 7 and m.data[1] == 0x7F)
            sent.clear()
            await asyncio.sleep(rng.choice([0, 0, 0.01, 1.0]))  # lets ISO-TP timeouts and S3 expire
        await asyncio.sleep(2)  # any half-received multi-frame request times out
        sent.clear()
        server.on_message(can.Message(arbitration_id=req, data=bytes([3, 0x22, 0xF1, 0x8C]).ljust(8, b"\xcc"),
                                      is_extended_id=False))
        await settle()
        reply = [bytes(m.data) for m in sent if m.arbitration_id == rsp]
        server.close()
        return nrcs, reply

    nrcs, reply = run(main(), virtual=True)
    assert nrcs > 100  # unsupported services, wrong lengths and sessions are answered 7F SID NRC
    assert reply, "no reply to a valid ReadDataByIdentifier"
    first = reply[0]
    payload = first[2:] if first[0] >> 4 == 1 else first[1:]  # first frame of a multi-frame reply, or single
    assert payload[:3] == bytes([0x62, 0xF1, 0x8C]), [r.hex() for r in reply]


def test_overlong_line_is_handled_not_logged(caplog):
    async def main():
        bench = SimBench({"F1": "car-400"})
        endpoints = await bench.start()
        try:
            _r, w = await _connect(endpoints["F1.dmm"])
            w.write(b"A" * 200_000)
            await w.drain()
            await asyncio.sleep(0.5)
            w.close()
        finally:
            await bench.stop()

    with caplog.at_level("ERROR", logger="asyncio"):
        run(main(), virtual=True)
    assert not [r for r in caplog.records if r.name == "asyncio" and r.levelname == "ERROR"]
