"""Shared helpers for the line-integration tests: a tiny station, its runs, a TCP proxy.

A plain module (not conftest) so the station process script can import it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import textwrap
import threading
from pathlib import Path

PG_URL = os.environ.get("EOL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MQTT_HOST, MQTT_PORT = "127.0.0.1", int(os.environ.get("EOL_TEST_MQTT_PORT", "1883"))

# Two computed measurements with limits and a dwell: a whole run costs about a millisecond on
# virtual time, yet journals every kind of row statistics and the forwarder care about.
PLAN = """\
schema_version: 1
id: line-tiny
version: 1.0.0
title: Line integration test plan
instruments: []
parameters:
  cell_v: {value: 3.31 V}
  spread: {value: 12 mV}
main:
  - id: cells
    station.calc: {cell_v_mean: "${cell_v}", cell_spread: "${spread}"}
    expect:
      cell_v_mean: {min: 3.2 V, max: 3.4 V}
      cell_spread: {max: 25 mV}
  - id: dwell
    station.wait: 30 s
"""


def write_station(folder: Path, station_id: str, *, extra: str = "") -> Path:
    """A station config (one fixture, no instruments) and the plan; returns the config path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plan.yaml").write_text(PLAN)
    config = folder / "station.yaml"
    config.write_text(textwrap.dedent(f"""\
        schema_version: 1
        station: {{id: {station_id}}}
        fixtures:
          F1: {{}}
        results: {{db: results/station.db, synchronous: NORMAL}}
        """) + extra)
    return config


async def run_many(config: Path, count: int, *, prefix: str = "SN", subscribers=(),
                   pace_s: float = 0.0, after_each=None) -> list[str]:
    """``count`` runs of the tiny plan in one Session; returns the run ids.

    ``pace_s`` real seconds between runs (so a test can act mid-stream).
    """
    from station.clock import real_time
    from station.runner import RunRequest, Session, prepare

    req = RunRequest(plan=str(config.parent / "plan.yaml"), station=str(config))
    prep = prepare(req)
    ids = []
    async with Session(prep.config, sim=False) as session:
        for i in range(count):
            req.serial = f"{prefix}{i:04d}"
            _, run_id, _ = await session.run(req, prep, subscribers=list(subscribers),
                                             signals=False)
            ids.append(run_id)
            if after_each is not None:
                after_each(session, run_id)
            if pace_s:
                with real_time():
                    await asyncio.sleep(pace_s)
    return ids


def random_name(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


class TcpProxy:
    """A loopback TCP proxy to stand in for a database outage: ``down()`` closes the listener
    and every open connection (clients see resets, then "connection refused"); ``up()``
    listens again on the same port. Runs its own loop on a thread."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _pipe(self, reader, writer) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader, writer) -> None:
        try:
            t_reader, t_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, t_writer}
        await asyncio.gather(self._pipe(reader, t_writer), self._pipe(t_reader, writer))
        self._writers -= {writer, t_writer}

    async def _up(self) -> None:
        if self.port:  # listening again after down(): the same port
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
            return
        # The first time, a free port below the kernel's ephemeral range (32768-60999): while the
        # proxy is down, an ephemeral port it had would be free for any process's outgoing
        # connection to take as its own, and up() would then fail with "address in use".
        for port in random.Random().sample(range(20000, 32000), 200):
            try:
                self._server = await asyncio.start_server(self._handle, "127.0.0.1", port, reuse_address=True)
            except OSError:
                continue
            self.port = port
            return
        raise OSError("no free loopback port in 20000-31999 for the proxy")

    async def _down(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()

    def up(self) -> TcpProxy:
        self._call(self._up())
        return self

    def down(self) -> None:
        self._call(self._down())

    def url(self, base: str = PG_URL) -> str:
        return base.replace("127.0.0.1:5432", f"127.0.0.1:{self.port}")

    def close(self) -> None:
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
