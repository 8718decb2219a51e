"""Resource strings checked without I/O: the scheme a driver needs, hosts, ports, options.

``check_resource(resource, kind)`` raises ``ValueError`` naming what is wrong, so a station
config with a VISA port 70000 or a CAN port 65536 is refused at load time — before any
instrument is opened or switched — instead of failing half-way through opening a fixture.

Kinds: ``"message"`` (VISA or a pyserial URL: SCPI and line-based instruments), ``"modbus"``
(``modbus-tcp://`` / ``modbus-rtu://``), ``"can"`` (``can://interface/channel?options``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from drivers.errors import InstrumentError
from drivers.transports.factory import is_serial_resource

KINDS = ("message", "modbus", "can")
_PORT_OPTIONS = ("port",)  # CAN interface options that are TCP ports (socketcand)


def _port(text: str | int, where: str) -> int:
    try:
        port = int(text)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: port {text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ValueError(f"{where}: port {port} is outside 1..65535")
    return port


def _host_port(netloc: str, where: str) -> None:
    host, colon, port = netloc.rpartition(":")
    if not colon or not host:
        raise ValueError(f"{where}: expected HOST:PORT, got {netloc!r}")
    _port(port, where)


def _check_visa(resource: str) -> None:
    from pyvisa import rname

    try:
        parsed = rname.parse_resource_name(resource)
    except rname.InvalidResourceName as err:
        raise ValueError(f"not a VISA resource name: {err}") from None
    port = getattr(parsed, "port", None)
    if port is not None:
        _port(port, f"VISA resource {resource!r}")
    host = getattr(parsed, "host_address", None)
    if host is not None and not str(host).strip():
        raise ValueError(f"VISA resource {resource!r} has no host")


def _check_serial(resource: str) -> None:
    from drivers.transports.serial_line import parse_serial_resource

    try:
        url, _settings = parse_serial_resource(resource)
    except InstrumentError as err:
        raise ValueError(str(err)) from None
    parts = urlsplit(url)
    if parts.scheme in ("socket", "rfc2217"):
        _host_port(parts.netloc, f"serial resource {resource!r}")


def _check_can(resource: str) -> None:
    from drivers.transports.can import parse_can_resource

    interface, _channel, options = parse_can_resource(resource)
    for key in _PORT_OPTIONS:
        if key in options:
            _port(options[key], f"CAN resource {resource!r} option {key}")
    import can

    known = set(can.interfaces.VALID_INTERFACES)
    if interface not in known:
        raise ValueError(f"CAN resource {resource!r}: unknown interface {interface!r}; "
                         f"known: {', '.join(sorted(known))}")


def check_resource(resource: str, kind: str) -> None:
    """Raise ``ValueError`` if ``resource`` is not a well-formed resource of ``kind``."""
    text = resource.strip()
    if not text:
        raise ValueError("empty resource")
    if kind == "modbus":
        from drivers.transports.modbus import parse_resource

        try:
            parse_resource(text)
        except InstrumentError as err:
            raise ValueError(str(err)) from None
    elif kind == "can":
        _check_can(text)
    elif kind == "message":
        if text.lower().startswith(("modbus-", "can:")):
            raise ValueError(f"{text!r} is not a VISA or serial resource (this driver talks SCPI/lines)")
        (_check_serial if is_serial_resource(text) else _check_visa)(text)
    else:
        raise ValueError(f"unknown transport kind {kind!r}; kinds: {', '.join(KINDS)}")
