"""Modbus RTU on a serial line: CRC-16, frame layout, inter-frame silence, and a pty null modem.

An RTU frame is ``unit | PDU | CRC-16 (low byte first)``; frames are separated by at least
3.5 character times of silence, and a gap of more than 1.5 character times inside a frame
makes it invalid (Modbus over Serial Line V1.02, 2.5.1.1). Above 19200 baud the spec fixes
the two times at 750 us and 1750 us. One character is 11 bits (start, 8 data, parity or a
second stop bit, stop).

``PtyLink`` is a null-modem cable inside one machine: the simulator owns the master side (a
file descriptor it reads with the event loop), the client opens the slave side by its path
(``/dev/pts/N``) with pyserial, as it would open ``/dev/ttyUSB0``. A pty does not pace the
baud rate, so timing comes only from the endpoints' own timers. The kernel hands pty bytes to
the other side from a work queue, so just after a write the far end may not be readable yet:
a virtual-time loop (station/clock.py) can jump its clock in that gap. Use a pty on real
time; on virtual time use a pyserial ``socket://`` line (loopback TCP is delivered at once).
"""

from __future__ import annotations

import os
import tty

BITS_PER_CHAR = 11


def crc16(data: bytes) -> int:
    """Modbus CRC-16 (polynomial 0xA001 reflected, initial 0xFFFF) of ``data``."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def frame(unit: int, pdu: bytes) -> bytes:
    """The RTU frame carrying ``pdu`` to/from ``unit``: CRC appended low byte first."""
    body = bytes([unit]) + bytes(pdu)
    return body + crc16(body).to_bytes(2, "little")


def parse_frame(data: bytes) -> tuple[int, bytes] | None:
    """``(unit, pdu)`` of a complete frame, or None if it is too short or its CRC is wrong."""
    if len(data) < 4 or crc16(data[:-2]) != int.from_bytes(data[-2:], "little"):
        return None
    return data[0], bytes(data[1:-2])


def char_time(baud: int) -> float:
    """Seconds one 11-bit character takes on the line at ``baud``."""
    return BITS_PER_CHAR / float(baud)


def t15(baud: int) -> float:
    """Longest gap (s) allowed between two characters of one frame."""
    return 0.00075 if baud > 19200 else 1.5 * char_time(baud)


def t35(baud: int) -> float:
    """Silence (s) that ends a frame and must precede the next one."""
    return 0.00175 if baud > 19200 else 3.5 * char_time(baud)


class PtyLink:
    """A pty pair: ``master_fd`` for the simulated device, ``path`` for the client's pyserial.

    ``open()`` creates it (the slave in raw mode so no line discipline rewrites bytes);
    ``close()`` releases both ends (idempotent). No I/O happens in the constructor.
    """

    def __init__(self) -> None:
        self.master_fd: int | None = None
        self.path: str = ""
        self._slave_fd: int | None = None

    def open(self) -> str:
        """Create the pair; return the slave path the client opens (``/dev/pts/N``)."""
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self.master_fd, self._slave_fd = master, slave
        # Keeping our own slave descriptor open means the master never sees EOF/EIO while
        # the client closes and reopens the port, as a cable stays plugged in.
        self.path = os.ttyname(slave)
        return self.path

    def close(self) -> None:
        for fd in (self.master_fd, self._slave_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master_fd = self._slave_fd = None
