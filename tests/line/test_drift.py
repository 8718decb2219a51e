"""Golden-pack drift: individuals / moving-range charts of the reference packs' runs, Western
Electric rules, the drifting station/fixture flagged (`station stats --reference`), MQTT alarm."""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import socket

from station.line import drift, stats_cmd
from station.results import ResultStore
from tests.line.test_stats import emit_run

LIM = {"unit": "Ohm", "min": 0.0, "max": 0.2}


def _store(path, drift_f2=True):
    # Steady noise, the same on both fixtures: a fixed sequence, not a random draw (with random
    # noise the rules have a real false-alarm rate, which this test is not about).
    noise = [0.3, -0.8, 0.5, -0.2, 0.9, -0.6, 0.1, -0.4, 0.7, -0.1]
    start = dt.date(2026, 10, 1)
    with ResultStore(path) as s:
        for i in range(30):
            day = (start + dt.timedelta(days=i)).isoformat()
            for fixture in ("F1", "F2"):
                value = 0.100 + 0.001 * noise[i % len(noise)]
                if fixture == "F2" and drift_f2 and i >= 22:
                    value += 0.004 + 0.0005 * (i - 22)  # a contact creeping up
                emit_run(s, f"g{i}{fixture}", "GOLD-1", day, value, "PASS", limits=LIM,
                         fixture=fixture, name="r_bond")
            emit_run(s, f"p{i}", f"PK{i}", day, 0.15, "PASS", limits=LIM, name="r_bond")


def _args(path, **kw):
    base = dict(store=str(path), reference=True, reference_serial=["GOLD-1"], format="json",
                since=None, until=None, html=None)
    return argparse.Namespace(**{**base, **kw})


def test_rules_on_known_sequences():
    assert 5 in drift.western_electric([0, 0, 0, 0, 0, 3.5])
    assert drift.western_electric([0, 0, 2.5, 0.1, 2.5]) == {4: ["2: 2 of 3 beyond 2σ"]}
    assert drift.western_electric([1.5, 1.5, 0, 1.5, 1.5]) == {4: ["3: 4 of 5 beyond 1σ"]}
    z = [-0.5] * 8
    assert drift.western_electric(z) == {7: ["4: 8 on one side"]}
    assert drift.western_electric([0.5, -0.5] * 10) == {}


def test_drifting_fixture_is_flagged_and_the_steady_one_is_not(tmp_path):
    path = tmp_path / "gold.db"
    _store(path)
    out, err = io.StringIO(), io.StringIO()
    assert stats_cmd.stats_command(_args(path), out=out, err=err) == 0, err.getvalue()
    data = json.loads(out.getvalue())
    assert data["flagged"] == [{"station": "EOL-1", "fixture": "F2"}]
    charts = {c["fixture"]: c for c in data["charts"]}
    assert set(charts) == {"F1", "F2"}  # only the golden pack's runs: PK* are not charted
    assert charts["F2"]["drifting"] and not charts["F1"]["drifting"]
    assert (charts["F2"]["n"], charts["F2"]["baseline_n"]) == (30, 20)
    first = min(v["utc"] for v in charts["F2"]["violations"])
    assert first >= "2026-10-23"  # flagged from the drift on, not before
    text = io.StringIO()
    assert stats_cmd.stats_command(_args(path, format="text"), out=text) == 0
    assert "DRIFTING: EOL-1 fixture F2" in text.getvalue()


def test_reference_serials_from_the_station_config(tmp_path):
    path = tmp_path / "gold.db"
    _store(path, drift_f2=False)
    config = tmp_path / "station.yaml"
    config.write_text("schema_version: 1\nfixtures: {F1: {instruments: {}}}\n"
                      "reference_serials: [GOLD-1]\n")
    out = io.StringIO()
    args = _args(path, reference_serial=[], config=str(config))
    assert stats_cmd.stats_command(args, out=out) == 0
    data = json.loads(out.getvalue())
    assert data["flagged"] == [] and len(data["charts"]) == 2
    err = io.StringIO()
    assert stats_cmd.stats_command(_args(path, reference_serial=[]), out=io.StringIO(), err=err) == 2
    assert "no reference serials" in err.getvalue()


def test_drift_alarm_is_published_to_mqtt(tmp_path, mqtt_broker):
    import paho.mqtt.client as mqtt

    host, port = mqtt_broker
    path = tmp_path / "gold.db"
    _store(path)
    topic = f"h22/test/{tmp_path.name}/drift"
    got = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"h22-sub-{tmp_path.name}")
    sub.on_message = lambda c, u, msg: got.append(json.loads(msg.payload))
    sub.connect(host, port)
    sub.subscribe(topic, qos=1)
    sub.loop_start()
    try:
        args = _args(path, alarm_mqtt=f"mqtt://{host}:{port}/{topic}")
        assert stats_cmd.stats_command(args, out=io.StringIO()) == 0
        import time as _t

        deadline = _t.monotonic() + 10
        while not got and _t.monotonic() < deadline:
            _t.sleep(0.05)
    finally:
        sub.loop_stop()
        sub.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)  # clear the retained alarm
        sub.disconnect()
    assert got and got[0]["drifting"] and got[0]["flagged"] == [{"station": "EOL-1", "fixture": "F2"}]


def test_unreachable_broker_never_changes_the_exit_code(tmp_path):
    path = tmp_path / "gold.db"
    _store(path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    err = io.StringIO()
    args = _args(path, alarm_mqtt=f"mqtt://127.0.0.1:{port}/h22/none")
    assert stats_cmd.stats_command(args, out=io.StringIO(), err=err) == 0
    assert "drift alarm not delivered" in err.getvalue()
