"""One station as a separate process, for the line tests.

    python -m tests.line.station_proc FOLDER STATION_ID RUNS [--pg URL --schema S]
        [--mqtt-port P --mqtt-prefix X] [--pace S] [--hold]

Runs RUNS packs of the tiny plan in one Session on virtual time, journalling locally and,
with ``--pg``, forwarding to PostgreSQL; with ``--mqtt-port``, publishing live status.
Prints JSON lines: ``{"event": "journalled", ...}`` when the runs are done,
``{"event": "done", ...}`` after the forwarder drained. ``--hold`` then waits for stdin to
close before shutting down (so a test can SIGKILL a live station).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from station import clock
from station.line.forwarder import Forwarder
from station.line.mqtt_status import MqttStatus
from station.line.pg_store import PgResultStore
from station.line.services import LineServices
from station.results import ResultStore
from tests.line.line_helpers import run_many, write_station


def say(**fields) -> None:
    print(json.dumps(fields), flush=True)


async def main(a: argparse.Namespace) -> int:
    config = write_station(Path(a.folder), a.station)
    journal = config.parent / "results" / "station.db"
    line = LineServices()
    if a.mqtt_port:
        line.status = MqttStatus(a.station, port=a.mqtt_port, prefix=a.mqtt_prefix).open()
    if a.pg:
        ResultStore(journal).open().close()  # the forwarder needs the journal to exist
        line.forwarder = Forwarder(journal, PgResultStore(a.pg, schema=a.schema,
                                                          application_name=f"eol-{a.station}"),
                                   source=a.station, backoff_s=(0.05, 0.5)).start()
    ids = await run_many(config, a.runs, prefix=f"{a.station}-", subscribers=line.subscribers,
                         pace_s=a.pace)
    say(event="journalled", station=a.station, runs=len(ids), run_ids=ids)
    loop = asyncio.get_running_loop()
    if line.forwarder is not None:
        drained = await loop.run_in_executor(None, line.forwarder.wait_idle, 60.0)
        f = line.forwarder
        say(event="done", station=a.station, drained=drained, uploaded=f.uploaded,
            failures=f.failures, replayed=f.replayed, last_error=f.last_error)
    else:
        say(event="done", station=a.station)
    if a.hold:
        await loop.run_in_executor(None, sys.stdin.read)
    line.stop()
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("station")
    p.add_argument("runs", type=int)
    p.add_argument("--pg")
    p.add_argument("--schema")
    p.add_argument("--mqtt-port", type=int)
    p.add_argument("--mqtt-prefix", default="eol")
    p.add_argument("--pace", type=float, default=0.0)
    p.add_argument("--hold", action="store_true")
    sys.exit(clock.run(main(p.parse_args()), virtual=True))
