"""Pick the message transport for a resource string: serial-style URLs and devices, else VISA.

``serial:…``, ``socket://…``, ``rfc2217://…``, ``loop://…``, ``/dev/…`` and ``COMn`` go to
``SerialTransport`` (pyserial); everything else (``TCPIP::…::SOCKET``, ``ASRL…``, ``USB…``,
``GPIB…``) is a VISA resource. The transport is returned un-opened: no I/O here.
"""

from __future__ import annotations

import re

from drivers.transports.message import MessageTransport

_SERIAL_PREFIXES = ("serial:", "socket://", "rfc2217://", "loop://", "/dev/")
_COM_PORT = re.compile(r"^COM\d+$", re.IGNORECASE)


def is_serial_resource(resource: str) -> bool:
    """True when ``resource`` names a pyserial URL or a local serial device."""
    text = resource.strip()
    return text.lower().startswith(_SERIAL_PREFIXES) or bool(_COM_PORT.match(text))


def open_message_transport(resource: str, *, timeout: float, instrument: str) -> MessageTransport:
    """Build (not open) the transport for ``resource``; ``timeout`` (s) per operation."""
    if is_serial_resource(resource):
        # Imported lazily: pyserial is only loaded by stations that use it.
        from drivers.transports.serial_line import SerialTransport

        return SerialTransport(resource, timeout=timeout, instrument=instrument)
    from drivers.transports.visa import VisaTransport

    return VisaTransport(resource, timeout=timeout, instrument=instrument)
