"""The simulated BMS's UDS server (ISO 14229-1) on ISO-TP, running in the simulator's event loop.

Services: 0x10 session (default/programming/extended, reply carries P2/P2*), 0x3E tester
present, 0x27 seed/key, 0x22 read DIDs, 0x2E write DIDs, 0x31 routines (start/stop/results,
with 0x78 responsePending for slow ones), 0x19 DTCs (0x01, 0x02, 0x0A), 0x14 clear, 0x11 reset.
Positive reply = SID + 0x40; negative = ``7F SID NRC``. In a non-default session, S3 (5 s on
the loop clock) without any request drops the ECU back to the default session, relocked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import can

from sim.bms.ecu import DEFAULT, DTC_AVAILABILITY_MASK, EcuState, NegativeResponse, Nrc
from sim.bms.isotp_link import MAX_PAYLOAD, IsoTpError, IsoTpLink

SUPPRESS = 0x80  # suppressPosRspMsgIndicationBit of a sub-function byte
_WITH_SUBFUNCTION = {0x10, 0x11, 0x27, 0x31, 0x3E}  # services whose positive reply can be suppressed
_NOT_IN_DEFAULT = {0x27, 0x2E, 0x2F, 0x31}  # services this ECU offers only outside the default session

Handler = Callable[["UdsServer", bytes], Awaitable[bytes]]


class UdsServer:
    """Answers UDS requests arriving as CAN frames on ``rx_id`` with frames on ``tx_id``.

    The BMS simulator calls ``on_message`` for every frame it sees (in the loop) and passes its
    bus's ``send`` (or any callable taking a ``can.Message``). ``p2``/``p2_star`` (s) are the
    timings announced in the 0x10 reply; ``s3`` (s) is the session timeout; while a slow routine
    runs, 0x78 is repeated every ``pending_interval`` s so the tester's P2* never expires.
    """

    def __init__(
        self,
        ecu: EcuState,
        *,
        send: Callable[[can.Message], None],
        rx_id: int = 0x7E4,
        tx_id: int = 0x7EC,
        p2: float = 0.050,
        p2_star: float = 5.0,
        s3: float = 5.0,
        pending_interval: float = 2.0,
    ) -> None:
        self.ecu = ecu
        self.link = IsoTpLink(send, rx_id, tx_id, self._on_request)
        self.p2, self.p2_star, self.s3 = p2, p2_star, s3
        self.pending_interval = pending_interval
        self.aborted_replies = 0  # segmented replies the tester never took (no flow control)
        # a BMS profile's UDS commands (drivers/bms/commands.py): request bytes -> (step, effect)
        self.commands: dict[bytes, tuple] = {}
        self._s3_timer: asyncio.TimerHandle | None = None

    def on_message(self, msg: can.Message) -> None:
        """Feed one CAN frame from the bus (frames for other ids are ignored)."""
        self.link.on_message(msg)

    def close(self) -> None:
        """Stop timers and pending replies (simulator shutdown)."""
        if self._s3_timer is not None:
            self._s3_timer.cancel()
        self.link.close()

    async def _on_request(self, request: bytes) -> None:
        reply = await self.handle(request)
        if reply is not None:
            await self._reply(reply)

    async def _reply(self, payload: bytes) -> None:
        try:
            await self.link.send_payload(payload)
        except IsoTpError:
            self.aborted_replies += 1  # the tester gave up on this reply; ISO-TP drops it

    async def handle(self, request: bytes) -> bytes | None:
        """The reply to one request payload, or None when the positive reply is suppressed."""
        if not request:
            return None
        sid = request[0]
        self._restart_s3()
        try:
            handler = _HANDLERS.get(sid)
            if handler is None:
                raise NegativeResponse(Nrc.SERVICE_NOT_SUPPORTED, f"SID {sid:#04x}")
            if sid in _NOT_IN_DEFAULT and self.ecu.session == DEFAULT:
                raise NegativeResponse(Nrc.NOT_IN_ACTIVE_SESSION, f"SID {sid:#04x} in the default session")
            if sid in _WITH_SUBFUNCTION and len(request) < 2:
                raise NegativeResponse(Nrc.INCORRECT_LENGTH, "no sub-function")
            command = self.commands.get(bytes(request))
            reply = self._command(request, *command) if command else await handler(self, request)
        except NegativeResponse as nr:
            return bytes([0x7F, sid, nr.nrc])
        finally:
            self._restart_s3()  # S3 counts from the end of the last exchange
        if sid in _WITH_SUBFUNCTION and request[1] & SUPPRESS:
            return None
        if len(reply) > MAX_PAYLOAD:
            return bytes([0x7F, sid, Nrc.RESPONSE_TOO_LONG])
        return reply

    def _command(self, request: bytes, step, effect) -> bytes:
        """A profile command: refused outside its session or without its security level, else
        applied (``effect()``) and acknowledged as the service's positive reply."""
        if self.ecu.session != _SESSION_CODES[step.session]:
            raise NegativeResponse(Nrc.NOT_IN_ACTIVE_SESSION, f"{step.describe()} needs the {step.session} session")
        if step.security and self.ecu.unlocked_level != step.security:
            raise NegativeResponse(Nrc.SECURITY_ACCESS_DENIED, f"{step.describe()} needs level {step.security}")
        effect()
        sid = request[0]
        if sid == 0x31:
            return bytes([0x71]) + request[1:4] + (b"\x00" if request[1] & 0x7F == 0x01 else b"")
        if sid == 0x2F:
            return bytes([0x6F]) + request[1:]
        return bytes([sid + 0x40]) + request[1:3]

    def _restart_s3(self) -> None:
        if self._s3_timer is not None:
            self._s3_timer.cancel()
            self._s3_timer = None
        if self.ecu.session != DEFAULT:
            self._s3_timer = asyncio.get_running_loop().call_later(self.s3, self._s3_expired)

    def _s3_expired(self) -> None:
        self._s3_timer = None
        self.ecu.change_session(DEFAULT)

    # --- services -------------------------------------------------------------------------------

    async def _session(self, req: bytes) -> bytes:
        _expect_length(req, 2)
        self.ecu.change_session(req[1] & 0x7F)
        p2_ms, p2_star_10ms = round(self.p2 * 1000), round(self.p2_star * 100)
        return bytes([0x50, req[1] & 0x7F]) + p2_ms.to_bytes(2, "big") + p2_star_10ms.to_bytes(2, "big")

    async def _tester_present(self, req: bytes) -> bytes:
        _expect_length(req, 2)
        if req[1] & 0x7F:
            raise NegativeResponse(Nrc.SUB_FUNCTION_NOT_SUPPORTED, "TesterPresent sub-function")
        return b"\x7e\x00"

    async def _security_access(self, req: bytes) -> bytes:
        sub = req[1] & 0x7F
        now = asyncio.get_running_loop().time()
        if sub == 0 or sub > 0x7E:
            raise NegativeResponse(Nrc.SUB_FUNCTION_NOT_SUPPORTED, f"SecurityAccess {sub:#04x}")
        if sub % 2:  # odd: requestSeed
            _expect_length(req, 2)
            return bytes([0x67, sub]) + self.ecu.request_seed((sub + 1) // 2, now)
        if len(req) < 3:
            raise NegativeResponse(Nrc.INCORRECT_LENGTH, "sendKey without a key")
        self.ecu.send_key(sub // 2, req[2:], now)
        return bytes([0x67, sub])

    async def _read_did(self, req: bytes) -> bytes:
        if len(req) < 3 or len(req) % 2 == 0:
            raise NegativeResponse(Nrc.INCORRECT_LENGTH, "ReadDataByIdentifier takes 2 bytes per DID")
        dids = [int.from_bytes(req[i : i + 2], "big") for i in range(1, len(req), 2)]
        known = [did for did in dids if did in self.ecu.dids]
        if not known:  # unknown DIDs are skipped; none known at all is out of range
            raise NegativeResponse(Nrc.REQUEST_OUT_OF_RANGE, f"no known DID in {[hex(d) for d in dids]}")
        return b"\x62" + b"".join(did.to_bytes(2, "big") + self.ecu.read_did(did) for did in known)

    async def _write_did(self, req: bytes) -> bytes:
        if len(req) < 4:
            raise NegativeResponse(Nrc.INCORRECT_LENGTH, "WriteDataByIdentifier needs a DID and data")
        self.ecu.write_did(int.from_bytes(req[1:3], "big"), req[3:])
        return b"\x6e" + req[1:3]

    async def _io_control(self, req: bytes) -> bytes:
        # only the profile's commands (``commands``) are controls this ECU offers
        raise NegativeResponse(Nrc.REQUEST_OUT_OF_RANGE, f"no input/output control {req[1:].hex()}")

    async def _routine(self, req: bytes) -> bytes:
        if len(req) < 4:
            raise NegativeResponse(Nrc.INCORRECT_LENGTH, "RoutineControl needs a routine id")
        sub, rid = req[1] & 0x7F, int.from_bytes(req[2:4], "big")
        if sub not in (1, 2, 3):
            raise NegativeResponse(Nrc.SUB_FUNCTION_NOT_SUPPORTED, f"RoutineControl {sub:#04x}")
        routine = self.ecu.routines.get(rid)
        if routine is None:
            raise NegativeResponse(Nrc.REQUEST_OUT_OF_RANGE, f"routine {rid:#06x} unknown")
        head = bytes([0x71, sub]) + req[2:4]
        if sub == 2:  # stop
            if rid not in self.ecu.running:
                raise NegativeResponse(Nrc.REQUEST_SEQUENCE_ERROR, f"routine {rid:#06x} not running")
            self.ecu.running.discard(rid)
            return head
        if sub == 3:  # requestResults
            if rid not in self.ecu.routine_results:
                raise NegativeResponse(Nrc.REQUEST_SEQUENCE_ERROR, f"routine {rid:#06x} has no results")
            return head + self.ecu.routine_results[rid]
        if rid in self.ecu.running:
            raise NegativeResponse(Nrc.CONDITIONS_NOT_CORRECT, f"routine {rid:#06x} already running")
        self.ecu.running.add(rid)
        await self._run_slowly(routine.delay, req[1])
        result = routine.result(req[4:])
        self.ecu.routine_results[rid] = result
        self.ecu.running.discard(rid)
        return head + result

    async def _run_slowly(self, delay: float, sub: int) -> None:
        """Answer 0x78 now and every ``pending_interval`` until ``delay`` s have passed."""
        loop = asyncio.get_running_loop()
        end = loop.time() + delay
        while loop.time() < end:
            await self._reply(bytes([0x7F, 0x31, Nrc.RESPONSE_PENDING]))
            await asyncio.sleep(min(self.pending_interval, end - loop.time()))
            self._restart_s3()  # the exchange is still in progress: S3 must not run out under it

    async def _read_dtc(self, req: bytes) -> bytes:
        if len(req) < 2:
            raise NegativeResponse(Nrc.INCORRECT_LENGTH, "ReadDTCInformation needs a sub-function")
        sub = req[1]
        if sub in (0x01, 0x02):
            _expect_length(req, 3)
            dtcs = self.ecu.dtcs_matching(req[2])
            if sub == 0x01:  # number of DTCs; format 0x01 = ISO 14229-1 DTC format
                return bytes([0x59, 0x01, DTC_AVAILABILITY_MASK, 0x01]) + len(dtcs).to_bytes(2, "big")
        elif sub == 0x0A:
            _expect_length(req, 2)
            dtcs = list(self.ecu.dtcs)
        else:
            raise NegativeResponse(Nrc.SUB_FUNCTION_NOT_SUPPORTED, f"ReadDTCInformation {sub:#04x}")
        records = b"".join(d.code.to_bytes(3, "big") + bytes([d.status]) for d in dtcs)
        return bytes([0x59, sub, DTC_AVAILABILITY_MASK]) + records

    async def _clear_dtc(self, req: bytes) -> bytes:
        _expect_length(req, 4)
        self.ecu.clear_dtcs(int.from_bytes(req[1:4], "big"))
        return b"\x54"

    async def _reset(self, req: bytes) -> bytes:
        _expect_length(req, 2)
        if req[1] & 0x7F not in (0x01, 0x03):  # hard, soft
            raise NegativeResponse(Nrc.SUB_FUNCTION_NOT_SUPPORTED, f"ECUReset {req[1]:#04x}")
        self.ecu.hard_reset()
        return bytes([0x51, req[1] & 0x7F])


def _expect_length(req: bytes, length: int) -> None:
    if len(req) != length:
        raise NegativeResponse(Nrc.INCORRECT_LENGTH, f"SID {req[0]:#04x} takes {length} bytes, got {len(req)}")


_SESSION_CODES = {"default": 0x01, "programming": 0x02, "extended": 0x03}

_HANDLERS: dict[int, Handler] = {
    0x10: UdsServer._session,
    0x11: UdsServer._reset,
    0x14: UdsServer._clear_dtc,
    0x19: UdsServer._read_dtc,
    0x22: UdsServer._read_did,
    0x27: UdsServer._security_access,
    0x2E: UdsServer._write_did,
    0x2F: UdsServer._io_control,
    0x31: UdsServer._routine,
    0x3E: UdsServer._tester_present,
}
