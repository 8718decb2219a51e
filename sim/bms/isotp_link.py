"""ISO 15765-2 (ISO-TP) framing for the simulated ECU, done inside the event loop (no threads).

Classic CAN, normal addressing, 8-byte frames: single frame (up to 7 bytes), first frame +
flow control + consecutive frames (up to 4095 bytes) in both directions. Every frame we send
is padded to 8 bytes with 0xCC (the common "unused byte" filler, easy to tell from data zeros
in a trace). As receiver we always answer a first frame with FC ContinueToSend, block size 0
(send everything), STmin 0. As sender we honour the tester's block size and STmin, wait on
FC.WAIT, and abort on FC.OVERFLOW or after ``n_bs`` s without flow control. All timing is the
running loop's clock, so it runs on virtual time with the rest of the simulator.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

import can

PADDING = 0xCC
MAX_PAYLOAD = 4095  # 12-bit FF_DL; the 32-bit escape is not needed for UDS diagnostics here
_SF, _FF, _CF, _FC = 0, 1, 2, 3
_CTS, _WAIT, _OVERFLOW = 0, 1, 2
_MAX_WAITS = 10  # FC.WAIT frames tolerated in a row (N_WFTmax)


class IsoTpError(Exception):
    """A transmission was aborted: flow-control timeout (N_Bs), overflow or too many waits."""


def stmin_seconds(raw: int) -> float:
    """Decode an FC STmin byte: 0-0x7F ms, 0xF1-0xF9 100-900 us, reserved values as 0x7F ms."""
    if raw <= 0x7F:
        return raw / 1000.0
    if 0xF1 <= raw <= 0xF9:
        return (raw - 0xF0) / 10000.0
    return 0.127


class IsoTpLink:
    """One ISO-TP channel: frames in through ``on_message``, payloads out through ``send_payload``.

    ``send`` puts one CAN frame on the bus; ``on_request`` receives each complete payload and may
    be a coroutine function (then it runs as a task, so a slow reply never blocks the link).
    ``n_bs`` (s) bounds the wait for the tester's flow control, ``n_cr`` (s) the gap between
    consecutive frames we receive.
    """

    def __init__(
        self,
        send: Callable[[can.Message], None],
        rx_id: int,
        tx_id: int,
        on_request: Callable[[bytes], Awaitable[None] | None],
        *,
        n_bs: float = 1.0,
        n_cr: float = 1.0,
    ) -> None:
        self._send = send
        self.rx_id = rx_id
        self.tx_id = tx_id
        self._on_request = on_request
        self.n_bs = n_bs
        self.n_cr = n_cr
        self._rx_buf: bytearray | None = None
        self._rx_len = 0
        self._rx_sn = 0
        self._rx_last = 0.0
        self._fc: asyncio.Queue[tuple[int, int, int]] | None = None
        self._tx_lock: asyncio.Lock | None = None
        self._tasks: set[asyncio.Task] = set()

    # --- receiving ------------------------------------------------------------------------------

    def on_message(self, msg: can.Message) -> None:
        """Feed one frame from the bus; frames for other ids are ignored."""
        if msg.arbitration_id != self.rx_id or msg.is_error_frame or msg.is_remote_frame or not msg.data:
            return
        data = bytes(msg.data)
        kind = data[0] >> 4
        if kind == _SF:
            length = data[0] & 0x0F
            if 1 <= length <= len(data) - 1:
                self._rx_buf = None  # a new request interrupts any reception in progress
                self._deliver(data[1 : 1 + length])
        elif kind == _FF and len(data) == 8:
            length = ((data[0] & 0x0F) << 8) | data[1]
            if length < 8:
                return  # would have fitted a single frame: invalid, ignored per ISO 15765-2
            self._rx_buf, self._rx_len, self._rx_sn = bytearray(data[2:]), length, 1
            self._rx_last = asyncio.get_running_loop().time()
            self._frame(bytes([0x30 | _CTS, 0, 0]))
        elif kind == _CF:
            self._consecutive(data)
        elif kind == _FC and self._fc is not None and len(data) >= 3:
            self._fc.put_nowait((data[0] & 0x0F, data[1], data[2]))

    def _consecutive(self, data: bytes) -> None:
        if self._rx_buf is None:
            return
        now = asyncio.get_running_loop().time()
        if (data[0] & 0x0F) != self._rx_sn or now - self._rx_last > self.n_cr:
            self._rx_buf = None  # wrong sequence number or N_Cr expired: reception aborted
            return
        self._rx_last = now
        self._rx_sn = (self._rx_sn + 1) & 0x0F
        self._rx_buf += data[1 : 1 + self._rx_len - len(self._rx_buf)]
        if len(self._rx_buf) >= self._rx_len:
            payload, self._rx_buf = bytes(self._rx_buf), None
            self._deliver(payload)

    def _deliver(self, payload: bytes) -> None:
        result = self._on_request(payload)
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Surface it through the loop's handler (test runners report it); never swallow.
            task.get_loop().call_exception_handler(
                {"message": f"ISO-TP request handler on {self.rx_id:#x} failed", "exception": task.exception(), "task": task}
            )

    # --- sending --------------------------------------------------------------------------------

    async def send_payload(self, data: bytes) -> None:
        """Send one payload, segmented as needed; raise ``IsoTpError`` if the tester aborts it."""
        if not 1 <= len(data) <= MAX_PAYLOAD:
            raise ValueError(f"ISO-TP payload must be 1..{MAX_PAYLOAD} bytes, got {len(data)}")
        if self._tx_lock is None:
            self._tx_lock = asyncio.Lock()
        async with self._tx_lock:
            if len(data) <= 7:
                self._frame(bytes([len(data)]) + data)
                return
            self._fc = asyncio.Queue()
            try:
                await self._segmented(data)
            finally:
                self._fc = None

    async def _segmented(self, data: bytes) -> None:
        assert self._fc is not None
        self._frame(bytes([0x10 | (len(data) >> 8), len(data) & 0xFF]) + data[:6])
        pos, sn = 6, 1
        while pos < len(data):
            block, stmin = await self._clear_to_send()
            sent = 0
            while pos < len(data) and (block == 0 or sent < block):
                if sent:
                    await asyncio.sleep(stmin)  # STmin paces frames; 0 still yields to the loop
                self._frame(bytes([0x20 | sn]) + data[pos : pos + 7])
                pos, sn, sent = pos + 7, (sn + 1) & 0x0F, sent + 1

    async def _clear_to_send(self) -> tuple[int, float]:
        assert self._fc is not None
        for _ in range(_MAX_WAITS + 1):
            try:
                status, block, stmin = await asyncio.wait_for(self._fc.get(), self.n_bs)
            except TimeoutError:
                raise IsoTpError(f"no flow control from the tester within N_Bs {self.n_bs:g} s") from None
            if status == _CTS:
                return block, stmin_seconds(stmin)
            if status == _OVERFLOW:
                raise IsoTpError("tester answered FC overflow: payload too large for its buffer")
        raise IsoTpError(f"more than {_MAX_WAITS} FC.WAIT frames in a row")

    def _frame(self, data: bytes) -> None:
        self._send(
            can.Message(
                arbitration_id=self.tx_id,
                data=data.ljust(8, bytes([PADDING])),
                is_extended_id=self.tx_id > 0x7FF,
            )
        )

    def close(self) -> None:
        """Cancel request handlers still running (the simulator is shutting down)."""
        for task in list(self._tasks):
            task.cancel()
