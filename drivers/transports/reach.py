"""A connection that could not be made, in words: which ``host:port`` and what failed, once.

Transports put this text in their ``ConnectError``; whoever reports it (the start-up check, the
run) adds the role and the resource. ``probe`` is one bounded TCP connect, for libraries whose
own connect cannot be bounded (python-can's socketcand interface retries for 10 s in a busy loop).
"""

from __future__ import annotations

import asyncio
import os
import socket

from drivers.clock import reply_timeout


def connect_failure(host: str, port: int | str, exc: BaseException | None, *, within: float | None = None) -> str:
    """``"connection to 10.0.0.7:502 refused"``, ``"no answer from 10.0.0.7:502 within 2 s"``,
    ``"cannot connect to 10.0.0.7:502: No route to host"``; ``within`` (s) is the wait given."""
    where = f"{host}:{port}"
    if exc is None or isinstance(exc, TimeoutError):
        return f"no answer from {where}" + (f" within {within:g} s" if within else "")
    if isinstance(exc, ConnectionRefusedError):
        return f"connection to {where} refused (nothing listens on that port)"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host {host!r} ({exc.strerror})"
    if isinstance(exc, OSError) and exc.errno:
        return f"cannot connect to {where}: {os.strerror(exc.errno)}"
    return f"cannot connect to {where}: {exc}"


async def probe(host: str, port: int, within: float) -> str | None:
    """Open and close one TCP connection to ``host:port``, waiting at most ``within`` s (plus the
    scaled clock's reply allowance); None if it connected, else ``connect_failure``'s words."""
    loop = asyncio.get_running_loop()
    try:
        transport, _ = await asyncio.wait_for(loop.create_connection(asyncio.Protocol, host, port),
                                              reply_timeout(within, loop))
    except (OSError, TimeoutError) as exc:
        return connect_failure(host, port, exc, within=within)
    transport.close()
    return None
