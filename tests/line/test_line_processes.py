"""Stations as separate processes: 3 × 100 runs into one PostgreSQL through an outage, and
live MQTT status with the offline will when a station is SIGKILLed."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from station.line import pg_migrate

ROOT = Path(__file__).resolve().parents[2]


class Station:
    """A station process whose JSON stdout lines arrive on a queue."""

    def __init__(self, folder: Path, station: str, runs: int, *args: str) -> None:
        self.station = station
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.line.station_proc", str(folder), station, str(runs),
             *args], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def expect(self, event: str, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if msg["event"] == event:
                return msg

    def finish(self, timeout: float = 30.0) -> int:
        if self.proc.stdin:
            self.proc.stdin.close()
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


def _count(conn) -> int:
    return conn.execute("SELECT count(*) FROM runs").fetchone()[0]


def test_three_stations_300_runs_through_an_outage_arrive_exactly_once(tmp_path, pg, pg_admin,
                                                                        proxy):
    url, schema = pg
    names = ["EOL-A", "EOL-B", "EOL-C"]
    # The schema was migrated by the admin (the pg fixture); the stations only check it.
    stations = [Station(tmp_path / n, n, 100, "--pg", proxy.url(url), "--schema", schema,
                        "--pace", "0.01") for n in names]
    try:
        deadline = time.monotonic() + 30
        while True:  # let the stream get going, then cut the database off mid-stream
            try:
                if _count(pg_admin) >= 15:
                    break
            except Exception:  # tables not created yet
                pass
            assert time.monotonic() < deadline, "no runs reached PostgreSQL"
            time.sleep(0.02)
        proxy.down()
        at_cut = _count(pg_admin)
        journalled = {s.station: s.expect("journalled") for s in stations}
        queued = _count(pg_admin)
        time.sleep(0.5)  # the database stays away a while: forwarders back off and retry
        assert _count(pg_admin) == queued
        assert queued < 300, "the outage came too late to queue anything"
        proxy.up()
        done = [s.expect("done") for s in stations]
        assert [s.finish() for s in stations] == [0, 0, 0]
    finally:
        for s in stations:
            s.kill()
    assert at_cut < 300 and all(d["drained"] for d in done)
    assert sum(d["failures"] for d in done) >= 1  # the outage was seen and survived
    assert sum(d["uploaded"] for d in done) >= 300
    local_ids = {rid for j in journalled.values() for rid in j["run_ids"]}
    assert len(local_ids) == 300
    rows = pg_admin.execute("SELECT id, station_id, status FROM runs").fetchall()
    assert len(rows) == 300 and {r[0] for r in rows} == local_ids  # each run once, none lost
    assert {r[2] for r in rows} == {"finished"}
    per_station = pg_admin.execute("SELECT station_id, count(*) FROM runs GROUP BY 1").fetchall()
    assert dict(per_station) == {n: 100 for n in names}
    # Every run arrived complete and once: as many events and measurements as journalled.
    import sqlite3

    local_events, local_meas = {}, {}
    for n in names:
        with sqlite3.connect(tmp_path / n / "results" / "station.db") as db:
            local_events.update(db.execute("SELECT run_id, count(*) FROM events GROUP BY 1"))
            local_meas.update(db.execute("SELECT run_id, count(*) FROM measurements GROUP BY 1"))
    assert dict(pg_admin.execute("SELECT id, event_count FROM runs").fetchall()) == local_events
    assert dict(pg_admin.execute("SELECT run_id, count(*) FROM measurements GROUP BY 1"
                                 ).fetchall()) == local_meas
    applied = pg_admin.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]
    assert applied == len(pg_migrate.migrations())  # by the admin; the stations only checked it


def test_mqtt_status_in_order_and_offline_will_on_sigkill(tmp_path, mqtt_broker):
    import paho.mqtt.client as mqtt

    from tests.line.line_helpers import random_name

    host, port = mqtt_broker
    prefix = random_name("eoltest")
    got: queue.Queue = queue.Queue()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=random_name("sub"))
    sub.on_message = lambda c, u, m: got.put((m.topic, m.payload.decode(), m.retain))
    sub.connect(host, port)
    sub.subscribe(f"{prefix}/#", qos=1)
    sub.loop_start()
    station = None
    try:
        time.sleep(0.2)  # subscription in place before the station says anything
        station = Station(tmp_path / "m", "EOL-M", 2, "--mqtt-port", str(port), "--mqtt-prefix",
                          prefix, "--hold")
        run_ids = station.expect("journalled")["run_ids"]
        station.expect("done")
        messages = []
        deadline = time.monotonic() + 10
        while not any(t.endswith("/state") and f'"{run_ids[1]}"' in p and "finished" in p
                      and t.count("/") == 2 for t, p, _ in messages):
            messages.append(got.get(timeout=max(0.01, deadline - time.monotonic())))
        seen = [(t.removeprefix(f"{prefix}/EOL-M/"), json.loads(p)) for t, p, _ in messages]
        first = [(t, p) for t, p in seen if p.get("run_id") == run_ids[0]]
        topics = [t if t != "F1/state" and t != "state" else f"{t}={p['state']}"
                  for t, p in first]
        assert topics[:4] == ["state=running", "F1/state=running", "F1/pack", "F1/alarm"]
        assert topics[4:-3] == ["F1/step"] * 2
        assert topics[-3:] == ["F1/verdict", "F1/state=finished", "state=finished"]
        assert first[2][1]["serial"] == "EOL-M-0000"
        assert [p["path"] for t, p in first if t == "F1/step"] == ["main/cells", "main/dwell"]
        assert first[-3][1]["verdict"] == "PASS"
        os.kill(station.proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while True:
            topic, payload, _ = got.get(timeout=max(0.01, deadline - time.monotonic()))
            if topic == f"{prefix}/EOL-M/state" and json.loads(payload)["state"] == "offline":
                break
        assert json.loads(payload)["reason"] == "connection lost"  # the will, not a shutdown
    finally:
        if station is not None:
            station.kill()
        for topic in ("state", "F1/state", "F1/pack", "F1/step", "F1/verdict", "F1/alarm"):
            sub.publish(f"{prefix}/EOL-M/{topic}", b"", qos=1, retain=True).wait_for_publish(5)
        sub.loop_stop()
        sub.disconnect()
