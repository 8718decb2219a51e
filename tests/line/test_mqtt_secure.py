"""MQTT username/password and TLS settings against a real Mosquitto of the test's own
(loopback, a free port, a password file and a certificate made here)."""

from __future__ import annotations

import json
import queue
import shutil
import socket
import subprocess
import time

import pytest

from station.events import RunStarted
from station.line.mqtt_status import MqttStatus
from tests.line.line_helpers import random_name

U = "2026-11-25T08:00:00.000+00:00"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def secure_broker(tmp_path):
    if not (shutil.which("mosquitto") and shutil.which("mosquitto_passwd")):
        pytest.skip("mosquitto / mosquitto_passwd not installed")
    pytest.importorskip("cryptography")
    from tests.line.test_mes_delivery import _certificate

    cert, key = _certificate(tmp_path)
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "eol-7", "s3cret"],
                   check=True, capture_output=True)
    port = _free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"user root\nper_listener_settings false\nallow_anonymous false\n"
                    f"password_file {passwords}\nlistener {port} 127.0.0.1\n"
                    f"cafile {cert}\ncertfile {cert}\nkeyfile {key}\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if broker.poll() is not None or time.monotonic() > deadline:
                broker.kill()
                pytest.fail(f"mosquitto did not start: {broker.stdout.read()}")
            time.sleep(0.05)
    yield port, cert
    broker.terminate()
    broker.wait(10)


def _watch(port, cert, topic):
    import paho.mqtt.client as mqtt

    got: queue.Queue = queue.Queue()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=random_name("w"))
    c.username_pw_set("eol-7", "s3cret")
    c.tls_set(ca_certs=str(cert))
    c.on_message = lambda cl, u, m: got.put((m.topic, m.payload.decode()))
    c.connect("127.0.0.1", port)
    c.subscribe(topic, qos=1)
    c.loop_start()
    return c, got


def test_password_and_tls_settings_reach_a_secured_broker(secure_broker):
    port, cert = secure_broker
    tls = {"ca_certs": str(cert), "certfile": None, "keyfile": None, "verify": True}
    good = MqttStatus("EOL-S", port=port, username="eol-7", password="s3cret", tls=tls,
                      fixtures=["F1"]).open()
    watcher, got = _watch(port, cert, "eol/EOL-S/#")
    try:
        assert good.broker.startswith("mqtts://")
        good.handle(RunStarted("r1", U, 0.0, "PK-1", "p", "1", "t", "p", "ab", None, {},
                               "EOL-S", "F1", "op", "0.1", False, planned_steps=1))
        assert good.flush(10)  # every message acknowledged by the broker
        seen = {}
        deadline = time.monotonic() + 10
        while "eol/EOL-S/F1/pack" not in seen:
            topic, payload = got.get(timeout=max(0.01, deadline - time.monotonic()))
            seen[topic] = payload
        assert json.loads(seen["eol/EOL-S/F1/pack"])["serial"] == "PK-1"
    finally:
        good.close()
        watcher.loop_stop()
        watcher.disconnect()
    # A wrong password, or no TLS on a TLS listener: never connected, nothing acknowledged.
    for kwargs in ({"username": "eol-7", "password": "wrong", "tls": tls},
                   {"username": "eol-7", "password": "s3cret", "tls": None}):
        bad = MqttStatus("EOL-S", port=port, fixtures=["F2"], **kwargs).open()
        try:
            assert not bad.flush(2) and not bad._connected.is_set()
        finally:
            bad.close()
