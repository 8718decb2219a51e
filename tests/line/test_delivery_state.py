"""The delivery picture the operator UI's badge polls (``LineServices.delivery_state``): per
target what waits, which error and since when — the line database behind a proxy that goes down
and up, the MQTT broker's link likewise."""

from __future__ import annotations

import time

from station import clock
from station.line.forwarder import Forwarder
from station.line.mqtt_status import MqttStatus
from station.line.pg_store import PgResultStore
from station.line.services import LineServices
from tests.line.line_helpers import TcpProxy, run_many, write_station


def _wait(condition, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def _db_state(services):
    states = [s for s in services.delivery_state().values() if s["kind"] == "DB"]
    assert len(states) <= 1, states  # one database, one entry, whatever it was first called
    return states[0] if states else None


def test_database_state_says_what_waits_since_when_and_clears(tmp_path, pg, proxy):
    url, schema = pg
    config = write_station(tmp_path / "st", "EOL-D")
    ids = clock.run(run_many(config, 3), virtual=True)
    journal = config.parent / "results" / "station.db"
    proxy.down()
    pg_store = PgResultStore(proxy.url(url), schema=schema, connect_timeout_s=1)
    services = LineServices(forwarder=Forwarder(journal, pg_store, backoff_s=(0.05, 0.2))).start()
    try:
        failing = _wait(lambda: (s := _db_state(services)) and s["error"] and s, what="the error")
        assert failing["backlog"] == len(ids)  # never reached, yet the waiting runs are counted
        assert "cannot connect" in failing["error"] and failing["since_utc"]
        assert failing["name"] == pg_store.name
        passes = services.forwarder.failures
        _wait(lambda: services.forwarder.failures >= passes + 2, what="more failed passes")
        assert _db_state(services)["since_utc"] == failing["since_utc"]  # the outage's start
        proxy.up()
        done = _wait(lambda: (s := _db_state(services)) and not s["error"] and s["backlog"] == 0
                     and s, what="delivery")
        assert done["since_utc"] is None and done["name"] == pg_store.name
        # now known by the database's identity; the entry under its name went with the error
        assert [t for t, s in services.delivery_state().items() if s["kind"] == "DB"] == \
            [services.forwarder.target]
    finally:
        services.stop()


def test_mqtt_link_counts_as_an_outage_after_its_grace(mqtt_broker):
    host, port = mqtt_broker
    broker = TcpProxy(port, host).up()
    broker.down()
    status = MqttStatus("EOL-LINK", host="127.0.0.1", port=broker.port, fixtures=["F1"])
    status.down_grace_s = 0.5
    services = LineServices(status=status)
    try:
        services.start()
        link = services.delivery_state()[f"mqtt:{status.broker}"]
        assert link["error"] is None  # connecting is no outage yet
        down = _wait(lambda: (s := services.delivery_state()[f"mqtt:{status.broker}"])["error"] and s,
                     what="the outage")
        assert down["kind"] == "MQTT" and "not connected" in down["error"] and down["since_utc"]
        assert down["backlog"] > 0  # the retained idle state and clean-ups wait in the client
        broker.up()
        _wait(lambda: services.delivery_state()[f"mqtt:{status.broker}"]["error"] is None,
              what="the reconnect")
        assert services.delivery_state()[f"mqtt:{status.broker}"]["backlog"] == 0
        broker.down()  # the broker goes away under a live connection
        lost = _wait(lambda: services.delivery_state()[f"mqtt:{status.broker}"]["error"],
                     what="the lost link")
        assert "not connected" in lost
    finally:
        services.stop()
        broker.close()
