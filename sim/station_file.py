"""The station config ``station sim serve --write-station FILE`` writes for the bench it serves.

Hardware mode one command away: the file names every endpoint of the served bench as a real
resource (SCPI on raw sockets, Modbus TCP, the leak tester's serial line as a socket URL, the
BMS through socketcand), the same drivers as the in-process simulated station, ``mode:
development`` and ``time_scale`` equal to the bench's speed, so ``station run PLAN --station
FILE`` (no ``--sim``) runs on the bench's clock. Written as text (``sim`` does not import the
station's config models); ``tests/hardware`` checks the station accepts it.

Written atomically (a temporary file in the same directory, then ``os.replace``): a script that
waits for FILE to appear never reads half a config.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

STATION_ID = "EOL-BENCH-01"


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text)


def _tcpip(address: str) -> str:
    host, port = address.rsplit(":", 1)
    return f"TCPIP::{host}::{port}::SOCKET"


def station_yaml(endpoints: dict[str, str], can_address: str, *, fixture: str, preset: str, speed: float,
                 can_channel: str, uds_ids: tuple[int, int], db: str) -> str:
    """The station config text for a bench serving ``endpoints`` (``SimBench.start()``'s map)
    and its socketcand hub at ``can_address`` (``host:port``); ``speed`` is the bench's time
    scale, ``db`` the result store path relative to the file."""
    f = fixture
    can_host, can_port = can_address.rsplit(":", 1)
    can = f"can://socketcand/{can_channel}?host={can_host}&port={can_port}&tcp_tune=true"
    scale = f"{speed:g}"
    return f"""\
# Written by `station sim serve --preset {preset} --speed {scale}`: a station config for the bench it
# serves on loopback, as if its peers were real instruments (no --sim needed):
#   station run test_plans/pack_eol.yaml --station THIS_FILE --variant {preset} --serial X
# The ports are the bench's of this start; they die with it. See docs/station.example.yaml for
# a real station's config.
schema_version: 1
station: {{id: {STATION_ID}, name: "Simulated bench (station sim serve, {preset})"}}
mode: development
time_scale: {scale}  # the bench runs {scale}x real time; the station's clock must run as fast (development only)
interlock_period: 0.05  # s of station time

instruments:
  safety_tester: {{driver: chroma_19032, resource: {_q(_tcpip(endpoints["safety"]))}, shared: true}}

fixtures:
  {f}:
    instruments:
      safety: safety_tester
      fixture: {{driver: modbus_fixture, resource: {_q(f"modbus-tcp://{endpoints[f'{f}.fixture']}?unit=1")}}}
      cycler:  {{driver: itech_it6000, resource: {_q(_tcpip(endpoints[f"{f}.cycler"]))}}}
      # the same cycler over Modbus TCP instead of SCPI:
      # cycler: {{driver: modbus_cycler, resource: {_q(f"modbus-tcp://{endpoints[f'{f}.cycler_modbus']}?unit=1")}}}
      dmm:     {{driver: keysight_34465a, resource: {_q(_tcpip(endpoints[f"{f}.dmm"]))}}}
      leak:    {{driver: ateq_leak, resource: {_q(f"socket://{endpoints[f'{f}.leak']}")},
                options: {{maker: ATEQ, model: F5200, serial: SIM-LK-1, firmware: "1.0"}}}}
      bms:     {{driver: dbc_bms, resource: {_q(can)},
                options: {{cells: {endpoints[f"{f}.cells"]}, temperature_sensors: {endpoints[f"{f}.temps"]}, maker: EOL-SIM,
                          model: BMS-CAN, uds: {{tx_id: 0x{uds_ids[0]:X}, rx_id: 0x{uds_ids[1]:X}}}}}}}

results:
  db: {_q(db)}
"""


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that it appears whole or not at all (OSError on failure)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
