"""An instrument whose peer is not there (the bench stopped, a wrong port): each transport fails
at once with one ConnectError that names the role, host:port and what failed, said once; the
socketcand CAN port never enters python-can's 10 s connect loop (a core busy for 10 s)."""

from __future__ import annotations

import logging
import socket

import pytest

from drivers.errors import ConnectError
from drivers.transports.can import CanPort
from drivers.transports.modbus import ModbusTransport
from drivers.transports.serial_line import SerialTransport
from drivers.transports.visa import VisaTransport


@pytest.fixture
def dead_port() -> int:
    """A loopback port nothing listens on (bound once to get a free number, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refused(port: int) -> str:
    return f"connection to 127.0.0.1:{port} refused"


async def test_socketcand_refused_is_one_attempt_and_a_clear_error(dead_port, caplog):
    caplog.set_level(logging.WARNING, logger="can")
    can_port = CanPort(f"can://socketcand/can0?host=127.0.0.1&port={dead_port}&tcp_tune=true", instrument="bms")
    with pytest.raises(ConnectError) as err:
        await can_port.open()
    assert str(err.value).startswith(f"bms: socketcand: {refused(dead_port)}"), str(err.value)
    assert err.value.command == "open" and "Traceback" not in str(err.value)
    # python-can logs one warning per connect attempt of its retry loop: it never ran
    attempts = [r for r in caplog.records if "Failed to connect to server" in r.getMessage()]
    assert attempts == []
    assert can_port.bus is None


async def test_visa_socket_refused_says_it_once(dead_port):
    transport = VisaTransport(f"TCPIP::127.0.0.1::{dead_port}::SOCKET", timeout=1.0, instrument="cycler")
    with pytest.raises(ConnectError) as err:
        await transport.open()
    text = str(err.value)
    assert text.startswith(f"cycler: {refused(dead_port)}"), text
    assert "errno" not in text.lower() and "ConnectionRefusedError" not in text


async def test_modbus_tcp_refused_names_host_and_port(dead_port):
    transport = ModbusTransport(f"modbus-tcp://127.0.0.1:{dead_port}?unit=1", timeout=1.0, instrument="fixture")
    with pytest.raises(ConnectError) as err:
        await transport.open()
    assert str(err.value).startswith(f"fixture: {refused(dead_port)}"), str(err.value)
    assert "Connect call failed" not in str(err.value)


async def test_serial_socket_refused_names_host_and_port_once(dead_port):
    transport = SerialTransport(f"socket://127.0.0.1:{dead_port}", timeout=1.0, instrument="leak")
    with pytest.raises(ConnectError) as err:
        await transport.open()
    text = str(err.value)
    assert text.startswith(f"leak: {refused(dead_port)}"), text
    assert text.count(str(dead_port)) == 1, text
