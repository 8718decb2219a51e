"""A session's line integration in one object: forwarder, MQTT status and MES, from config.

``LineServices.from_config(loaded_config, journal)`` builds whatever the station config
names (nothing for a config without line fields); ``start()`` starts the forwarder thread
and the MQTT network thread; ``subscribers`` go to every Sequencer; ``route_check`` runs
before a run touches anything and ``after_run`` uploads the record to the MES. ``stop()``
flushes and stops. No I/O before ``start()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .forwarder import Forwarder
from .mes import FileMes, HttpMes, Mes, MesError, RouteDecision
from .mqtt_status import MqttStatus
from .pg_store import PgResultStore


class RouteRefused(Exception):
    """The MES says this serial may not be tested here now (nothing was touched)."""

    def __init__(self, serial: str, decision: RouteDecision) -> None:
        self.serial, self.decision = serial, decision
        super().__init__(f"MES route check refused serial {serial!r}: "
                         f"{decision.reason or 'no reason given'}")


class LineServices:
    """``forwarder``, ``status`` and ``mes`` are each optional (None = not configured)."""

    def __init__(self, *, forwarder: Forwarder | None = None, status: MqttStatus | None = None,
                 mes: Mes | None = None) -> None:
        self.forwarder = forwarder
        self.status = status
        self.mes = mes

    @classmethod
    def from_config(cls, loaded: Any, journal: str | Path) -> "LineServices":
        """From a ``LoadedConfig`` whose models carry the fields in line/config.py."""
        cfg = loaded.config
        station = cfg.station_id
        forwarder = status = mes = None
        url = getattr(cfg.results, "postgres_url", None)
        if url:
            pg = PgResultStore(url, schema=getattr(cfg.results, "postgres_schema", None),
                               application_name=f"eol-{station}"[:63])
            forwarder = Forwarder(journal, pg, source=f"{station}:{journal}")
        mqtt = getattr(cfg, "mqtt", None)
        if mqtt is not None:
            status = MqttStatus(mqtt.station_topic or station, host=mqtt.host, port=mqtt.port,
                                prefix=mqtt.prefix, keepalive_s=mqtt.keepalive,
                                username=mqtt.username)
        mes_cfg = getattr(cfg, "mes", None)
        if mes_cfg is not None and mes_cfg.type == "file":
            mes = FileMes(loaded.resolve_path(mes_cfg.folder), require_known=mes_cfg.require_known)
        elif mes_cfg is not None:
            mes = HttpMes(mes_cfg.url, timeout_s=mes_cfg.timeout)
        return cls(forwarder=forwarder, status=status, mes=mes)

    @property
    def subscribers(self) -> list[Callable]:
        return [s.handle for s in (self.forwarder, self.status) if s is not None]

    def start(self) -> "LineServices":
        if self.status is not None:
            self.status.open()
        if self.forwarder is not None:
            self.forwarder.start()
        return self

    def stop(self, drain_timeout_s: float = 0.0) -> None:
        """Stop; with ``drain_timeout_s`` first give the forwarder that long to empty its queue
        (blocking: from a loop, call it in an executor). Queued runs stay in the journal."""
        try:
            if self.forwarder is not None:
                if drain_timeout_s > 0:
                    self.forwarder.wait_idle(drain_timeout_s)
                self.forwarder.stop()
        finally:
            if self.status is not None:
                self.status.close()

    async def route_check(self, serial: str, station: str, plan: str) -> RouteDecision | None:
        """Ask the MES (if any); raises ``RouteRefused`` or ``MesError``."""
        if self.mes is None:
            return None
        decision = await self.mes.route_check(serial, station, plan)
        if not decision.allowed:
            raise RouteRefused(serial, decision)
        return decision

    async def after_run(self, record: dict[str, Any], decision: RouteDecision | None) -> None:
        """Upload the record to the MES under the route check's transaction id."""
        if self.mes is not None and decision is not None:
            await self.mes.upload(record, decision.transaction_id)


__all__ = ["LineServices", "MesError", "RouteRefused"]
