"""A session's line integration in one object: forwarder, MQTT status, MES, OPC UA, from config.

``LineServices.from_config(loaded_config, journal, fixtures=...)`` builds whatever the station
config names (nothing for a config without line fields); ``start()`` starts the forwarder and
MES outbox threads, the MQTT network thread and the OPC UA server thread; ``subscribers`` go to every
Sequencer; ``route_check`` runs before a run touches anything and ``after_run`` queues the
record for the MES. ``stop()`` flushes what it can in the time given and stops. No I/O before
``start()``.

Delivery never changes a verdict or an exit code: PostgreSQL and MES uploads are queued in the
journal and retried (forwarder.py, mes_outbox.py); their state goes to the MQTT topic
``<prefix>/<station>/delivery`` and ``station line status``; ``delivery_state()`` adds the
MQTT broker link and is what the operator UI's badge polls. Only the route check, which is
asked *before* a run, may refuse it (``LineRefused``, exit 4, nothing touched).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .forwarder import Forwarder, now_utc
from .mes import FileMes, HttpMes, Mes, MesError, RouteDecision, tls_context
from .mes_outbox import MesOutbox
from .pg_store import PgResultStore


class RouteRefused(Exception):
    """The MES says this serial may not be tested here now (nothing was touched)."""

    def __init__(self, serial: str, decision: RouteDecision) -> None:
        self.serial, self.decision = serial, decision
        super().__init__(f"MES route check refused serial {serial!r}: "
                         f"{decision.reason or 'no reason given'}")


class RouteUnanswered(Exception):
    """The MES could not answer the route check (unreachable, error, bad answer)."""

    def __init__(self, serial: str, error: MesError) -> None:
        self.serial, self.error = serial, error
        super().__init__(f"MES route check of serial {serial!r} got no answer: {error}")


class LineServices:
    """``forwarder``, ``status``, ``mes``, ``outbox`` and ``opcua`` are each optional."""

    def __init__(self, *, forwarder: Forwarder | None = None, status: Any = None,
                 mes: Mes | None = None, outbox: MesOutbox | None = None,
                 opcua: Any = None) -> None:
        self.forwarder = forwarder
        self.status = status
        self.mes = mes
        self.outbox = outbox
        self.opcua = opcua
        self.delivery: dict[str, dict[str, Any]] = {}  # target -> last state reported
        self._lock = threading.Lock()  # the queues' threads write ``delivery``, the UI reads it
        for kind, service in (("DB", forwarder), ("MES", outbox)):
            if service is not None:
                service.on_state = functools.partial(self._delivery_state, kind)

    @classmethod
    def from_config(cls, loaded: Any, journal: str | Path,
                    fixtures: list[str] | None = None) -> LineServices:
        """From a ``LoadedConfig`` whose models carry the fields in line/config.py.

        ``fixtures``: the fixtures this process drives (default: all of the station's).
        """
        cfg = loaded.config
        station = cfg.station_id
        forwarder = status = mes = outbox = opcua = None
        url = getattr(cfg.results, "postgres_url", None)
        if url:
            pg = PgResultStore(url, schema=getattr(cfg.results, "postgres_schema", None),
                               application_name=f"eol-{station}"[:63])
            forwarder = Forwarder(journal, pg, source=f"{station}:{journal}")
        mqtt = getattr(cfg, "mqtt", None)
        if mqtt is not None:
            from .mqtt_status import MqttStatus  # paho only when configured

            tls = mqtt.tls
            status = MqttStatus(
                mqtt.station_topic or station, host=mqtt.host, port=mqtt.port,
                prefix=mqtt.prefix, keepalive_s=mqtt.keepalive, username=mqtt.username,
                password=os.environ.get(mqtt.password_env) if mqtt.password_env else None,
                tls=None if tls is None else {
                    "ca_certs": tls.ca_file and str(loaded.resolve_path(tls.ca_file)),
                    "certfile": tls.cert_file and str(loaded.resolve_path(tls.cert_file)),
                    "keyfile": tls.key_file and str(loaded.resolve_path(tls.key_file)),
                    "verify": tls.verify},
                fixtures=list(fixtures or loaded.fixture_ids()),
                all_fixtures=list(loaded.fixture_ids()))
        mes_cfg = getattr(cfg, "mes", None)
        if mes_cfg is not None and mes_cfg.type == "file":
            mes = FileMes(loaded.resolve_path(mes_cfg.folder), require_known=mes_cfg.require_known)
        elif mes_cfg is not None:
            headers = dict(mes_cfg.headers)
            for header, var in mes_cfg.headers_env.items():
                if var not in os.environ:
                    raise MesError(f"HTTP MES {mes_cfg.url}: header {header}: environment "
                                   f"variable {var} is not set")
                headers[header] = os.environ[var]
            tls = mes_cfg.tls
            context = None if tls is None else tls_context(
                tls.ca_file and str(loaded.resolve_path(tls.ca_file)),
                tls.cert_file and str(loaded.resolve_path(tls.cert_file)),
                tls.key_file and str(loaded.resolve_path(tls.key_file)), tls.verify)
            mes = HttpMes(mes_cfg.url, timeout_s=mes_cfg.timeout, headers=headers,
                          ssl_context=context)
        if mes is not None:
            outbox = MesOutbox(journal, mes)
        opc_cfg = getattr(cfg, "opcua", None)
        if opc_cfg is not None:
            from .opcua_server import OpcUaStatus  # asyncua only when configured

            opcua = OpcUaStatus(station, list(loaded.fixture_ids()), host=opc_cfg.host,
                                port=opc_cfg.port, writable=opc_cfg.writable)
        return cls(forwarder=forwarder, status=status, mes=mes, outbox=outbox, opcua=opcua)

    @property
    def subscribers(self) -> list[Callable]:
        return [s.handle for s in (self.forwarder, self.status, self.opcua) if s is not None]

    def start(self) -> LineServices:
        if self.status is not None:
            self.status.open()
        if self.forwarder is not None:
            self.forwarder.start()
        if self.outbox is not None:
            self.outbox.start()
        if self.opcua is not None:
            self.opcua.start()
        return self

    def stop(self, drain_timeout_s: float = 0.0) -> list[str]:
        """Stop; with ``drain_timeout_s`` first give the queues that long to empty (blocking:
        from a loop, call it in an executor). Returns warnings for what stays queued."""
        warnings = []
        try:
            for queue in (self.forwarder, self.outbox):
                if queue is None:
                    continue
                if drain_timeout_s > 0 and not queue.wait_idle(drain_timeout_s):
                    warnings.append(f"{queue.target or 'line database'}: not all delivered yet "
                                    f"(queued in the journal, sent later; `station line status`)"
                                    + (f": {' '.join(queue.last_error.split())}"
                                       if queue.last_error else ""))
                queue.stop()
        finally:
            if self.status is not None:
                self.status.close()
            if self.opcua is not None:
                self.opcua.stop()
        return warnings

    def _delivery_state(self, kind: str, state: dict[str, Any]) -> None:
        """A queue's state after a pass: kept with ``kind`` (DB, MES) and ``since_utc`` (when
        its current error began), and alarmed over MQTT when it changes."""
        with self._lock:
            previous = self.delivery.get(state["target"])
            failing_since = previous.get("since_utc") if previous and previous["error"] else None
            state = {**state, "kind": kind,
                     "since_utc": (failing_since or now_utc()) if state["error"] else None}
            for target in [t for t, s in self.delivery.items()
                           if s.get("name") == state["name"] and t != state["target"]]:
                del self.delivery[target]  # the same database, known by its identity now
            self.delivery[state["target"]] = state
            picture = dict(self.delivery)
        if self.status is not None and (previous is None or (previous["error"], previous[
                "backlog"] > 0) != (state["error"], state["backlog"] > 0)):
            self.status.delivery(picture)
        if self.opcua is not None:
            self.opcua.delivery(picture)

    def delivery_state(self) -> dict[str, dict[str, Any]]:
        """What each line target still waits for (thread-safe copy): target -> ``{"kind": DB |
        MES | MQTT, "name", "backlog", "error", "since_utc"}``. A target with ``backlog`` 0 and
        no ``error`` is delivered; a target not yet tried is absent."""
        with self._lock:
            out = {t: dict(s) for t, s in self.delivery.items()}
        if self.status is not None:
            link = self.status.link()
            out[link["target"]] = link
        return out

    async def route_check(self, serial: str, station: str, plan: str) -> RouteDecision | None:
        """Ask the MES (if any); raises ``RouteRefused`` or ``RouteUnanswered``."""
        if self.mes is None:
            return None
        try:
            decision = await self.mes.route_check(serial, station, plan)
        except MesError as exc:
            raise RouteUnanswered(serial, exc) from exc
        if not decision.allowed:
            raise RouteRefused(serial, decision)
        return decision

    async def after_run(self, record: dict[str, Any], decision: RouteDecision | None) -> None:
        """Queue the record's upload to the MES under the route check's transaction id."""
        if self.outbox is not None and decision is not None:
            if decision.components:
                self.outbox.note_components(record["run_id"], decision.components)
            self.outbox.enqueue(record["run_id"], decision.transaction_id)


__all__ = ["LineServices", "MesError", "RouteRefused", "RouteUnanswered"]
