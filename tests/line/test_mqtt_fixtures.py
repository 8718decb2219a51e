"""MQTT with one process per fixture: own client ids, retained state reset on start, the will
marks only the dead process's fixture offline, progress never past 100 %, and every payload
valid against its documented JSON Schema (docs/mqtt/)."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import time
from pathlib import Path

import pytest

from station.events import RunFinished, RunStarted, StepFinished, StepStarted
from station.line.mqtt_status import MqttStatus
from tests.line.line_helpers import random_name

ROOT = Path(__file__).resolve().parents[2]
U = "2026-11-25T08:00:00.000+00:00"
CHILD = """
import sys, time
from station.line.mqtt_status import MqttStatus
s = MqttStatus("EOL-P", port=int(sys.argv[1]), prefix=sys.argv[2], fixtures=["F2"],
               all_fixtures=["F1", "F2"], keepalive_s=2).open()
assert s.flush(5)
print(s.client_id, flush=True)
time.sleep(60)
"""


def validator(kind: str):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "docs" / "mqtt" / f"{kind}.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def schema_of(rest: str) -> str:
    parts = rest.split("/")
    if parts == ["state"]:
        return "station-state"
    if parts == ["delivery"]:
        return "delivery"
    return "fixture-state" if parts[1] == "state" else parts[1]


class Watch:
    def __init__(self, host, port, pattern):
        import paho.mqtt.client as mqtt

        self.got: queue.Queue = queue.Queue()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=random_name("w"))
        self.c.on_message = lambda c, u, m: self.got.put((m.topic, m.payload.decode(), m.retain))
        self.c.connect(host, port)
        self.c.subscribe(pattern, qos=1)
        self.c.loop_start()
        time.sleep(0.2)

    def until(self, pred, timeout=10.0):
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            item = self.got.get(timeout=max(0.01, deadline - time.monotonic()))
            seen.append(item)
            if pred(*item):
                return seen

    def clear(self, topics):
        for t in topics:
            self.c.publish(t, b"", qos=1, retain=True).wait_for_publish(5)
        self.c.loop_stop()
        self.c.disconnect()


def test_fixture_processes_share_a_station_without_kicking_each_other(mqtt_broker):
    host, port = mqtt_broker
    prefix = random_name("eoltest")
    base = f"{prefix}/EOL-P"
    w = Watch(host, port, f"{prefix}/#")
    # A crashed predecessor left F1 "running" with a step and an alarm.
    for kind, body in (("state", {"state": "running", "utc": U}), ("step", {"index": 3}),
                       ("alarm", {"active": True})):
        w.c.publish(f"{base}/F1/{kind}", json.dumps(body), qos=1, retain=True).wait_for_publish(5)
    f1 = MqttStatus("EOL-P", host=host, port=port, prefix=prefix, fixtures=["F1"],
                    all_fixtures=["F1", "F2"], keepalive_s=2).open()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(port), prefix], cwd=ROOT,
                             stdout=subprocess.PIPE, text=True)
    try:
        child_id = child.stdout.readline().strip()
        assert child_id and child_id != f1.client_id and child_id.startswith("eol-EOL-P-")
        seen = w.until(lambda t, p, r: t == f"{base}/F2/state" and "idle" in p)
        state = [json.loads(p) for t, p, _ in seen if t == f"{base}/F1/state" and p]
        assert state[-1]["state"] == "idle" and state[-1]["client_id"] == f1.client_id
        cleared = {t for t, p, _ in seen if p == ""}
        assert {f"{base}/F1/step", f"{base}/F1/alarm"} <= cleared
        child.kill()  # no DISCONNECT: the broker publishes the child's will
        seen = w.until(lambda t, p, r: t == f"{base}/F2/state" and "offline" in p, 15)
        will = json.loads(seen[-1][1])
        assert will["reason"] == "connection lost" and will["client_id"] == child_id
        validator("fixture-state").validate(will)
        # F1's process was never kicked off: still connected, its fixture never offline.
        assert f1._connected.is_set()
        assert not any(t == f"{base}/F1/state" and "offline" in p for t, p, _ in seen)
        assert not any(t == f"{base}/state" for t, p, _ in seen)  # nobody owns the station
    finally:
        child.kill()
        child.wait(10)
        f1.close()
        w.clear([f"{base}/{f}/{k}" for f in ("F1", "F2")
                 for k in ("state", "step", "alarm", "pack", "verdict")])


def test_progress_never_passes_100_and_every_payload_matches_its_schema(mqtt_broker):
    host, port = mqtt_broker
    prefix = random_name("eoltest")
    base = f"{prefix}/EOL-S"
    w = Watch(host, port, f"{prefix}/#")
    status = MqttStatus("EOL-S", host=host, port=port, prefix=prefix, fixtures=["F1"]).open()
    try:
        status.handle(RunStarted("r1", U, 0.0, "SN1", "p", "1", "t", "p.yaml", "ab" * 32, None,
                                 {}, "EOL-S", "F1", "op", "0.1", False, planned_steps=2))
        for path, attempt in (("main/a", 1), ("main/a", 2), ("main/a", 3), ("main/b", 1),
                              ("teardown/off", 1), ("safe/cycler", 1)):
            status.handle(StepStarted("r1", U, 1.0, path, path[-1], path, "station.wait",
                                      path.split("/")[0], attempt))
            status.handle(StepFinished("r1", U, 1.0, path, path[-1], "error", 0.1, attempt,
                                       "boom"))
        status.delivery({"pg:x": {"backlog": 3, "error": "connection refused"}})
        status.handle(RunFinished("r1", U, 2.0, "ERROR", "boom", 2.0))
        assert status.flush(5)
        seen = w.until(lambda t, p, r: t == f"{base}/state" and "finished" in p)
    finally:
        status.close()
        w.clear([f"{base}/{k}" for k in ("state", "delivery")]
                + [f"{base}/F1/{k}" for k in ("state", "step", "alarm", "pack", "verdict")])
    steps = [json.loads(p) for t, p, _ in seen if t == f"{base}/F1/step" and p]
    assert [s["index"] for s in steps] == [1, 1, 1, 2, 3, 4]  # retries are not new steps
    assert all(s["index"] <= s["planned"] and s["progress_pct"] <= 100 for s in steps)
    assert steps[-1]["progress_pct"] == 100
    checked = 0
    for topic, payload, _ in seen:
        if payload:
            body = json.loads(payload)
            if "utc" in body or topic.startswith(base):
                validator(schema_of(topic.removeprefix(base + "/"))).validate(body)
                checked += 1
    assert checked >= 15
    assert any(t == f"{base}/delivery" for t, _, _ in seen)
