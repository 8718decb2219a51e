"""MQTT status in process: alarms, retained picture for late subscribers, no blocking."""

from __future__ import annotations

import json
import queue
import time

from station.events import MonitorTripped, RunFinished, RunStarted, SafeStateAction, StepStarted
from station.line.mqtt_status import MqttStatus, topic_part
from tests.line.line_helpers import random_name

U = "2026-11-25T08:00:00.000+00:00"


def _started(run_id: str, fixture: str) -> RunStarted:
    return RunStarted(run_id, U, 0.0, "PK/1+#", "pack-eol", "3.2.0", "t", "p.yaml", "ab" * 32,
                      "bus-700", {}, "EOL 1", fixture, "op7", "0.1", True, planned_steps=4)


def _retained(host, port, pattern: str, count: int) -> dict[str, dict]:
    import paho.mqtt.client as mqtt

    got: queue.Queue = queue.Queue()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=random_name("late"))
    sub.on_message = lambda c, u, m: got.put((m.topic, m.payload, m.retain))
    sub.connect(host, port)
    sub.subscribe(pattern, qos=1)
    sub.loop_start()
    out = {}
    try:
        deadline = time.monotonic() + 5
        while len(out) < count:
            topic, payload, retain = got.get(timeout=max(0.01, deadline - time.monotonic()))
            assert retain
            out[topic] = json.loads(payload)
    finally:
        sub.loop_stop()
        sub.disconnect()
    return out


def test_alarms_and_the_retained_picture_a_late_dashboard_sees(mqtt_broker):
    host, port = mqtt_broker
    prefix = random_name("eoltest")
    status = MqttStatus("EOL 1", host=host, port=port, prefix=prefix).open()
    base = f"{prefix}/EOL 1"
    try:
        status.handle(_started("ra", "F1"))
        status.handle(_started("rb", "F2"))
        status.handle(StepStarted("ra", U, 1.0, "main/iso", "iso", "Isolation", "safety.ir",
                                  "main"))
        status.handle(MonitorTripped("ra", U, 2.0, "main/dcir", "bms.cell_temperature_max",
                                     47.5, "max 45 degC"))
        status.handle(SafeStateAction("rb", U, 2.5, "cycler", "output off", False, "timeout"))
        status.handle(RunFinished("ra", U, 3.0, "ABORTED", "monitor trip", 3.0))
        assert status.flush(5)
        picture = _retained(host, port, f"{prefix}/#", 9)
    finally:
        status.close()
        _clear(host, port, prefix)
    assert picture[f"{base}/F1/alarm"]["source"] == "monitor"
    assert "47.5 beyond max 45 degC" in picture[f"{base}/F1/alarm"]["message"]
    assert picture[f"{base}/F2/alarm"] == {"active": True, "source": "safe_state",
                                           "where": "cycler", "message": "output off failed: "
                                           "timeout", "run_id": "rb", "utc": U}
    assert picture[f"{base}/F1/verdict"]["verdict"] == "ABORTED"
    assert picture[f"{base}/F1/step"]["index"] == 1 and picture[f"{base}/F1/step"]["planned"] == 4
    # F2 still runs, so the station as a whole is still running.
    assert picture[f"{base}/state"]["state"] == "running"
    assert picture[f"{base}/F2/pack"]["serial"] == "PK/1+#"


def _clear(host, port, prefix) -> None:
    import paho.mqtt.client as mqtt

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=random_name("clr"))
    c.connect(host, port)
    c.loop_start()
    for t in ("state", *(f"{f}/{k}" for f in ("F1", "F2")
                         for k in ("state", "pack", "step", "verdict", "alarm"))):
        c.publish(f"{prefix}/EOL 1/{t}", b"", qos=1, retain=True).wait_for_publish(5)
    c.loop_stop()
    c.disconnect()


def test_publishing_never_blocks_the_run_when_the_broker_is_away():
    status = MqttStatus("EOL-2", host="127.0.0.1", port=1).open()  # nothing listens there
    t0 = time.perf_counter()
    for i in range(200):
        status.handle(_started(f"r{i}", "F1"))
        status.handle(RunFinished(f"r{i}", U, 1.0, "PASS", None, 1.0))
    elapsed = time.perf_counter() - t0
    status.close()
    # 400 events queued in the client, nothing waited for the network: a publish that waited
    # would wait paho's seconds each (minutes in all). The bound is that far from it so that a
    # loaded 2-core machine (1.04 s seen at load average 11) cannot fail it.
    assert elapsed < 5.0


def test_ids_become_single_safe_topic_levels():
    assert topic_part("EOL/1+#") == "EOL_1__" and topic_part("") == "_"
    assert MqttStatus("a/b").topic("F/1", "step") == "eol/a_b/F_1/step"
