"""The simulated bench listens on loopback only: every listening socket this process owns after
``SimBench.start()`` is bound to 127.0.0.1 (read from the kernel, not from the peers' own claims)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from sim.bench import SimBench
from station.clock import run

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net/tcp (Linux)")

LISTEN = "0A"


def _own_socket_inodes() -> set[str]:
    inodes = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _decode(hex_addr: str) -> tuple[str, int]:
    host, port = hex_addr.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1]), int(port, 16)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))  # per-word little endian
    return socket.inet_ntop(socket.AF_INET6, words), int(port, 16)


def listening_sockets() -> list[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state owned by this process."""
    mine = _own_socket_inodes()
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == LISTEN and cols[9] in mine:
                out.append(_decode(cols[1]))
    return out


def test_every_bench_server_binds_loopback():
    async def main():
        before = set(listening_sockets())
        bench = SimBench({"F1": "car-400", "F2": "bus-700"})
        endpoints = await bench.start()
        try:
            return before, set(listening_sockets()), endpoints
        finally:
            await bench.stop()

    before, after, endpoints = run(main(), virtual=True)
    new = after - before
    ports = {int(v.rsplit(":", 1)[1]) for k, v in endpoints.items() if ":" in v and not k.endswith(".port")}
    assert len(ports) >= 11  # 5+ per fixture + the shared safety tester
    assert ports <= {port for _a, port in new}, "every reported endpoint is a socket of ours"
    assert all(addr == "127.0.0.1" for addr, _p in new), sorted(new)
    hosts = {v.split("://")[-1].rsplit(":", 1)[0] for k, v in endpoints.items() if ":" in v and not k.endswith(".port")}
    assert hosts == {"127.0.0.1"}, endpoints
