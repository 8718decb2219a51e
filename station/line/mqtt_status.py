"""Live station status over MQTT (paho-mqtt 2.x): retained JSON topics, last will = offline.

Topic hierarchy (``prefix`` defaults to ``eol``; ids with ``/ + #`` are made safe with ``_``);
each payload has a JSON Schema in docs/mqtt/ (``<topic kind>.schema.json``)::

    eol/<station>/state              {"state": idle|running|finished|offline, "reason"?,
                                      "run_id"?, "fixture"?, "verdict"?, "utc"} — published
                                     only by a process that drives every fixture of the station
    eol/<station>/<fixture>/state    {"state": idle|running|finished|offline, "reason"?,
                                      "run_id"?, "verdict"?, "client_id", "utc"}
    eol/<station>/<fixture>/pack     {"serial", "plan_id", "plan_version", "variant",
                                      "operator", "run_id", "utc"}
    eol/<station>/<fixture>/step     {"path", "name", "phase", "attempt", "index",
                                      "planned", "progress_pct", "run_id", "utc"}: index counts
                                      distinct steps (a retry is not a new one) and planned
                                      grows with it, so progress never passes 100 %
    eol/<station>/<fixture>/verdict  {"verdict": PASS|FAIL|ERROR|ABORTED, "reason",
                                      "duration_s", "run_id", "utc"}
    eol/<station>/<fixture>/alarm    {"active": bool, "source": monitor|step|safe_state|log|
                                      run, "where", "message", "run_id", "utc"}; a new run
                                      publishes {"active": false} so no stale alarm stays

All messages are retained and QoS 1, so a dashboard that connects late sees the current
picture, and one client's messages arrive in the order they were published. Every payload
carries the ``run_id`` and the event's ``utc``.

``MqttStatus.handle`` is a sequencer subscriber. It only builds JSON and hands it to paho; the
network thread (``loop_start``) does all socket work, so the run's loop never waits on the
broker, and while the broker is away messages queue in the client and paho reconnects.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt

if TYPE_CHECKING:
    from station.events import Event

_UNSAFE = re.compile(r"[/+#\x00]")


class MqttStatusError(Exception):
    """The status publisher cannot be set up; names the broker."""


def _utc() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def topic_part(text: str) -> str:
    """An id as one topic level: no ``/``, ``+``, ``#`` or NUL; never empty."""
    return _UNSAFE.sub("_", text) or "_"


class MqttStatus:
    """Publishes one station's live status.

    ``station_id``: the station's id (topic level 2). ``host``/``port``: the broker.
    ``prefix``: topic root. ``client_id``: default unique per process. ``keepalive_s``: how
    soon the broker notices a silent (hung) station and publishes the will, s. ``fixtures``:
    the fixtures this process drives (reset on open, offline in the will); ``all_fixtures``:
    the station's (default: ``fixtures``). ``tls``: ``{"ca_certs", "certfile", "keyfile",
    "verify"}`` for ``tls_set``.
    """

    def __init__(self, station_id: str, *, host: str = "127.0.0.1", port: int = 1883,
                 prefix: str = "eol", client_id: str | None = None, keepalive_s: int = 10,
                 username: str | None = None, password: str | None = None,
                 tls: dict[str, Any] | None = None, fixtures: list[str] | None = None,
                 all_fixtures: list[str] | None = None) -> None:
        self.station = topic_part(station_id)
        self.host, self.port = host, port
        self.broker = f"mqtt{'s' if tls else ''}://{host}:{port}"
        self.prefix = prefix.rstrip("/")
        self.client_id = client_id or (f"eol-{self.station}-{socket.gethostname()}-"
                                       f"{os.getpid()}-{secrets.token_hex(3)}")[:64]
        self.keepalive_s = keepalive_s
        self._auth = (username, password)
        self._tls = tls
        self.fixtures = [topic_part(f) for f in fixtures or []]
        every = [topic_part(f) for f in all_fixtures or fixtures or []]
        # The station-level topic belongs to a process that drives every fixture.
        self.owns_station = not self.fixtures or set(every) <= set(self.fixtures)
        self._client: mqtt.Client | None = None
        self._fixture_of: dict[str, str] = {}  # run id -> fixture topic level
        self._running: set[str] = set()  # fixtures with a run going
        self._planned: dict[str, tuple[set[str], int]] = {}  # run id -> (paths started, planned)
        self._connected = threading.Event()
        # Since when the broker link is down: (monotonic s, UTC text, why); None while connected.
        self._down: tuple[float, str, str] | None = None
        self.down_grace_s = 5.0  # real s the link may be down before it counts as an outage
        # Messages handed to paho vs acknowledged by the broker (PUBACK), for flush().
        self._acks = threading.Condition()
        self._sent = self._acked = 0

    def topic(self, *parts: str) -> str:
        return "/".join([self.prefix, self.station, *(topic_part(p) for p in parts)])

    # -- lifecycle ----------------------------------------------------------------------------
    def open(self) -> MqttStatus:
        """Start the network thread and connect in the background; publishes state idle."""
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=mqtt.MQTTv311)
        if self._auth[0] is not None:
            client.username_pw_set(*self._auth)
        if self._tls is not None:
            import ssl

            try:
                client.tls_set(ca_certs=self._tls.get("ca_certs"),
                               certfile=self._tls.get("certfile"),
                               keyfile=self._tls.get("keyfile"),
                               cert_reqs=ssl.CERT_REQUIRED if self._tls.get("verify", True)
                               else ssl.CERT_NONE)
                client.tls_insecure_set(not self._tls.get("verify", True))
            except (OSError, ValueError, ssl.SSLError) as exc:
                raise MqttStatusError(f"MQTT status {self.broker}: TLS settings: {exc}") from exc
        # One will per connection: this process's fixture, or the station if it drives all.
        will = ("state",) if self.owns_station or len(self.fixtures) != 1 else \
            (self.fixtures[0], "state")
        client.will_set(self.topic(*will), self._json(
            state="offline", reason="connection lost", fixtures=self.fixtures,
            client_id=self.client_id, utc=_utc()), qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_connect_fail = lambda *_: self._went_down("cannot reach the broker")
        client.on_disconnect = self._on_disconnect
        self._went_down("no answer from the broker yet")
        client.on_publish = self._on_publish
        try:
            client.connect_async(self.host, self.port, keepalive=self.keepalive_s)
        except (OSError, ValueError) as exc:
            raise MqttStatusError(f"MQTT status {self.broker}: cannot connect: {exc}") from exc
        client.loop_start()
        self._client = client
        for fx in self.fixtures:  # a crashed predecessor's retained picture goes
            self._publish((fx, "state"), state="idle", client_id=self.client_id, utc=_utc())
            for kind in ("step", "alarm"):
                self._send(client, self.topic(fx, kind), "")  # empty retained = deleted
        if self.owns_station:
            self._publish(("state",), state="idle", utc=_utc())
        return self

    def close(self) -> None:
        """Publish state offline (reason shutdown), flush, disconnect, stop the thread."""
        client = self._client
        if client is None:
            return
        for fx in self.fixtures:
            self._send(client, self.topic(fx, "state"), self._json(
                state="offline", reason="shutdown", client_id=self.client_id, utc=_utc()))
        if self.owns_station:
            self._send(client, self.topic("state"), self._json(state="offline",
                                                               reason="shutdown", utc=_utc()))
        if self._connected.is_set():  # if the broker is away, the will says offline anyway
            self.flush(2.0)
        self._client = None
        client.disconnect()
        client.loop_stop()

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything published so far reached the broker (True) or ``timeout_s``
        real seconds passed (False). Blocking: for tests and shutdown, never from the run loop.
        """
        with self._acks:
            return self._acks.wait_for(lambda: self._acked >= self._sent, timeout_s)

    # -- the broker link (for the UI's delivery badge) -------------------------------------------
    def _on_connect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any, *_: Any) -> None:
        if getattr(reason, "is_failure", False):  # CONNACK refused: bad credentials, not allowed
            self._went_down(f"broker refused the connection: {reason}")
            return
        self._down = None
        self._connected.set()

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any, *_: Any) -> None:
        self._connected.clear()
        self._went_down(f"connection lost: {reason}")

    def _went_down(self, why: str) -> None:
        """Note the link down; a link already down keeps its first time (the outage's start)."""
        down = self._down
        self._down = (down[0], down[1], why) if down else (time.monotonic(), _utc(), why)

    def link(self) -> dict[str, Any]:
        """The broker link as a delivery target: ``{"target", "kind": "MQTT", "name", "backlog",
        "error", "since_utc"}``. ``error`` is set once the link has been down ``down_grace_s``
        real seconds (a connect in progress at start-up is no outage); ``backlog`` is then the
        messages paho holds for the broker (while connected they are in flight, not waiting).
        Thread-safe: reads only."""
        down = self._down if self._client is not None else None
        failing = down is not None and time.monotonic() - down[0] >= self.down_grace_s
        with self._acks:
            backlog = max(self._sent - self._acked, 0) if failing else 0
        return {"target": f"mqtt:{self.broker}", "kind": "MQTT", "name": self.broker,
                "backlog": backlog, "error": f"not connected ({down[2]})" if failing else None,
                "since_utc": down[1] if failing else None}

    def _on_publish(self, *_: Any) -> None:
        with self._acks:
            self._acked += 1
            self._acks.notify_all()

    def __enter__(self) -> MqttStatus:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- publishing -----------------------------------------------------------------------------
    @staticmethod
    def _json(**fields: Any) -> str:
        return json.dumps(fields, default=str, separators=(",", ":"))

    def _publish(self, parts: tuple[str, ...], **fields: Any) -> None:
        if self._client is None:
            raise MqttStatusError(f"MQTT status {self.broker}: not open")
        self._send(self._client, self.topic(*parts), self._json(**fields))

    def _send(self, client: mqtt.Client, topic: str, payload: str) -> None:
        with self._acks:
            self._sent += 1
        # QoS 1 is queued in the client even while disconnected and sent on (re)connect.
        client.publish(topic, payload, qos=1, retain=True)

    def delivery(self, targets: dict[str, dict[str, Any]]) -> None:
        """Publish the result-delivery picture (thread-safe: the queues' threads call it)."""
        if self._client is None:
            return
        shown = {t: {"backlog": max(s.get("backlog", 0), 0), "error": s.get("error")}
                 for t, s in targets.items()}
        active = any(s["error"] for s in shown.values())
        self._publish(("delivery",), active=active, targets=shown, utc=_utc())

    def handle(self, event: Event) -> None:
        """Sequencer subscriber: map one event to its status topics."""
        kind = type(event).__name__
        e, run_id = event, event.run_id
        base = {"run_id": run_id, "utc": e.utc}
        if kind == "RunStarted":
            fx = topic_part(e.fixture_id)
            self._fixture_of[run_id] = fx
            self._running.add(fx)
            self._planned[run_id] = (set(), e.planned_steps)
            if self.owns_station:
                self._publish(("state",), state="running", fixture=e.fixture_id, **base)
            self._publish((fx, "state"), state="running", client_id=self.client_id, **base)
            self._publish((fx, "pack"), serial=e.serial, plan_id=e.plan_id,
                          plan_version=e.plan_version, variant=e.variant, operator=e.operator,
                          **base)
            self._publish((fx, "alarm"), active=False, **base)
            return
        fx = self._fixture_of.get(run_id)
        if fx is None:  # events of a run we never saw start: nothing sensible to show
            return
        if kind == "StepStarted":
            paths, planned = self._planned.setdefault(run_id, (set(), 0))
            paths.add(e.path)  # a retry is the same step again, not one more
            planned = max(planned, len(paths))  # steps the plan did not count (safe, finally)
            self._planned[run_id] = (paths, planned)
            self._publish((fx, "step"), path=e.path, name=e.name, phase=e.phase,
                          attempt=e.attempt, index=len(paths), planned=planned,
                          progress_pct=round(100.0 * len(paths) / planned, 1), **base)
        elif kind == "StepFinished" and e.outcome in ("error", "aborted"):
            self._alarm(fx, "step", e.path, e.error or f"step {e.outcome}", base)
        elif kind == "MonitorTripped":
            self._alarm(fx, "monitor", e.path, f"{e.signal} = {e.value} beyond {e.limit}", base)
        elif kind == "SafeStateAction" and not e.ok:
            self._alarm(fx, "safe_state", e.instrument, f"{e.action} failed: {e.error}", base)
        elif kind == "LogMessage" and e.level.lower() in ("error", "critical"):
            self._alarm(fx, "log", "", e.message, base)
        elif kind == "RunFinished":
            self._publish((fx, "verdict"), verdict=e.verdict, reason=e.reason,
                          duration_s=e.duration_s, **base)
            self._publish((fx, "state"), state="finished", verdict=e.verdict,
                          client_id=self.client_id, **base)
            self._running.discard(fx)
            self._fixture_of.pop(run_id, None)
            self._planned.pop(run_id, None)
            if not self._running and self.owns_station:
                self._publish(("state",), state="finished", fixture=fx, verdict=e.verdict,
                              **base)

    def _alarm(self, fx: str, source: str, where: str, message: str, base: dict) -> None:
        self._publish((fx, "alarm"), active=True, source=source, where=where, message=message,
                      **base)
