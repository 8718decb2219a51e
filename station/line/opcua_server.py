"""The station's state as an OPC UA server (asyncua), for the line's SCADA and MES.

Address space (namespace ``urn:eol-station:<station>``), under Objects::

    <station>                    object
      State          String      idle | running (any fixture running)
      DeliveryAlarm  Boolean     result delivery (line database, MES) failing
      DeliveryBacklog Int32      records waiting to be delivered, all targets
      Fixtures/<fixture>         object per fixture
        State        String      idle | running | finished
        Serial, RunId, PlanId    String    the pack under test
        CurrentStep  String      step path;  StepIndex, PlannedSteps Int32; ProgressPct Double
        LastVerdict  String      PASS | FAIL | ERROR | ABORTED;  LastVerdictUtc DateTime
        Alarm        Boolean     an alarm of the current run;  AlarmMessage String
        Measurements/<step path>/<name>   Double (numeric) or String, the latest value

Read-only by default (``writable=True`` lets clients write, for commissioning only): the
station is the only source of its state. No security policy beyond None is configured here:
bind it to loopback (the default) or put it behind the plant's OPC UA gateway.

The server runs on its own thread with its own real-time asyncio loop (the station's loop may
run on virtual time, where asyncua's session and subscription timers would race).
``handle(event)`` is a sequencer subscriber: it only queues the change for that loop.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
from typing import TYPE_CHECKING, Any

from asyncua import Server, ua

if TYPE_CHECKING:
    from station.events import Event

logging.getLogger("asyncua").setLevel(logging.ERROR)  # it logs every session at INFO/WARNING


class OpcUaError(Exception):
    """The OPC UA server could not start (port taken, bad address)."""


_FIXTURE_VARS = {"State": "idle", "Serial": "", "RunId": "", "PlanId": "", "CurrentStep": "",
                 "StepIndex": 0, "PlannedSteps": 0, "ProgressPct": 0.0, "LastVerdict": "",
                 "LastVerdictUtc": None, "Alarm": False, "AlarmMessage": ""}
_TYPES = {str: ua.VariantType.String, int: ua.VariantType.Int32, float: ua.VariantType.Double,
          bool: ua.VariantType.Boolean}


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


class OpcUaStatus:
    """``station``: id (browse name of the root object); ``fixtures``: one object each.

    ``host``/``port``: where to listen (port 0: a free one; ``endpoint`` says which).
    """

    def __init__(self, station: str, fixtures: list[str], *, host: str = "127.0.0.1",
                 port: int = 4840, writable: bool = False) -> None:
        self.station, self.fixtures = station, list(fixtures)
        self.host, self.port, self.writable = host, port, writable
        self.endpoint = ""
        self._server: Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._done: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._nodes: dict[tuple[str, ...], Any] = {}
        self._ns = 0
        self._fixture_of: dict[str, str] = {}
        self._steps: dict[str, set[str]] = {}
        self._planned: dict[str, int] = {}

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, timeout_s: float = 20.0) -> OpcUaStatus:
        """Start the server thread; returns once it listens (raises ``OpcUaError`` if not)."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()),
                                        name="line-opcua", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._error is not None:
            self.stop()
            raise OpcUaError(f"OPC UA server on {self.host}:{self.port}: cannot start: "
                             f"{self._error or 'timed out'}")
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        loop, done = self._loop, self._done
        if loop is not None and done is not None and not loop.is_closed():
            loop.call_soon_threadsafe(done.set)
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every queued change is in the address space (tests, shutdown)."""
        loop, queue = self._loop, self._queue
        if loop is None or queue is None:
            return False
        future = asyncio.run_coroutine_threadsafe(queue.join(), loop)
        try:
            future.result(timeout_s)
            return True
        except TimeoutError:
            return False

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue, self._done = asyncio.Queue(), asyncio.Event()
        try:
            server = Server()
            await server.init()
            server.set_endpoint(f"opc.tcp://{self.host}:{self.port}/eol/")
            server.set_server_name(f"EOL station {self.station}")
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            # Only anonymous sessions: otherwise a username login stays offered, and with no
            # user manager any name and password would be taken.
            server.set_identity_tokens([ua.AnonymousIdentityToken])
            self._ns = await server.register_namespace(f"urn:eol-station:{self.station}")
            await self._build(server)
            await server.start()
        except Exception as exc:  # handed to start(), which raises it typed
            self._error = exc
            self._ready.set()
            return
        self._server = server
        self.port = server.bserver.port
        self.endpoint = f"opc.tcp://{self.host}:{self.port}/eol/"
        self._ready.set()
        worker = asyncio.ensure_future(self._apply())
        await self._done.wait()
        worker.cancel()
        await server.stop()

    async def _var(self, parent: Any, key: tuple[str, ...], name: str, value: Any) -> Any:
        if value is None:
            node = await parent.add_variable(self._ns, name, ua.Variant(
                None, ua.VariantType.DateTime))
        else:
            node = await parent.add_variable(self._ns, name, ua.Variant(value, _TYPES[type(value)]))
        if self.writable:
            await node.set_writable()
        self._nodes[key] = node
        return node

    async def _build(self, server: Server) -> None:
        root = await server.nodes.objects.add_object(self._ns, self.station)
        self._nodes[("station",)] = root
        await self._var(root, ("State",), "State", "idle")
        await self._var(root, ("DeliveryAlarm",), "DeliveryAlarm", False)
        await self._var(root, ("DeliveryBacklog",), "DeliveryBacklog", 0)
        folder = await root.add_object(self._ns, "Fixtures")
        for fx in self.fixtures:
            obj = await folder.add_object(self._ns, fx)
            for name, value in _FIXTURE_VARS.items():
                await self._var(obj, (fx, name), name, value)
            self._nodes[(fx, "Measurements")] = await obj.add_object(self._ns, "Measurements")

    # -- updates --------------------------------------------------------------------------------
    def _put(self, *change: Any) -> None:
        loop, queue = self._loop, self._queue
        if loop is not None and queue is not None and not loop.is_closed():
            loop.call_soon_threadsafe(queue.put_nowait, change)

    async def _apply(self) -> None:
        assert self._queue is not None
        while True:
            key, value = await self._queue.get()
            try:
                node = self._nodes.get(key)
                if node is None and key[1:2] == ("Measurements",):
                    parent = self._nodes[key[:2]]
                    node = await self._var(parent, key, "/".join(key[2:]), value)
                if node is not None:
                    kind = ua.VariantType.DateTime if isinstance(value, dt.datetime) else \
                        _TYPES[type(value)]
                    current = await node.read_data_type_as_variant_type()
                    if current != kind:  # a measurement that changed kind: show its text
                        value, kind = str(value), ua.VariantType.String
                        if current != kind:
                            continue
                    await node.write_value(ua.DataValue(ua.Variant(value, kind)))
            finally:
                self._queue.task_done()

    def _set(self, fx: str, name: str, value: Any) -> None:
        self._put((fx, name), value)

    def delivery(self, targets: dict[str, dict[str, Any]]) -> None:
        """Result-delivery alarm (the line queues' threads call it)."""
        self._put(("DeliveryAlarm",), any(s.get("error") for s in targets.values()))
        self._put(("DeliveryBacklog",), sum(max(s.get("backlog", 0), 0)
                                            for s in targets.values()))

    def handle(self, event: Event) -> None:
        """Sequencer subscriber: the event's effect on the address space, queued."""
        kind, e = type(event).__name__, event
        if kind == "RunStarted":
            if e.fixture_id not in self.fixtures:
                return
            fx = self._fixture_of[e.run_id] = e.fixture_id
            self._steps[e.run_id], self._planned[e.run_id] = set(), e.planned_steps
            for name, value in (("State", "running"), ("Serial", e.serial),
                                ("RunId", e.run_id), ("PlanId", e.plan_id),
                                ("CurrentStep", ""), ("StepIndex", 0),
                                ("PlannedSteps", e.planned_steps), ("ProgressPct", 0.0),
                                ("Alarm", False), ("AlarmMessage", "")):
                self._set(fx, name, value)
            self._put(("State",), "running")
            return
        fx = self._fixture_of.get(e.run_id)
        if fx is None:
            return
        if kind == "StepStarted":
            steps = self._steps[e.run_id]
            steps.add(e.path)
            planned = self._planned[e.run_id] = max(self._planned[e.run_id], len(steps))
            self._set(fx, "CurrentStep", e.path)
            self._set(fx, "StepIndex", len(steps))
            self._set(fx, "PlannedSteps", planned)
            self._set(fx, "ProgressPct", round(100.0 * len(steps) / planned, 1))
        elif kind == "MeasurementTaken":
            value = e.value if isinstance(e.value, (bool, str)) else (
                float(e.value) if isinstance(e.value, (int, float)) else str(e.value))
            self._put((fx, "Measurements", e.path, e.name), value)
        elif kind in ("MonitorTripped", "SafeStateAction", "StepFinished"):
            message = (f"{e.signal} = {e.value} beyond {e.limit}" if kind == "MonitorTripped"
                       else f"{e.instrument}: {e.action} failed: {e.error}"
                       if kind == "SafeStateAction" and not e.ok
                       else f"{e.path}: {e.error or e.outcome}"
                       if kind == "StepFinished" and e.outcome in ("error", "aborted") else None)
            if message is not None:
                self._set(fx, "Alarm", True)
                self._set(fx, "AlarmMessage", message)
        elif kind == "RunFinished":
            self._set(fx, "LastVerdict", e.verdict)
            self._set(fx, "LastVerdictUtc", _utc(e.utc))
            self._set(fx, "State", "finished")
            self._fixture_of.pop(e.run_id, None)
            self._steps.pop(e.run_id, None)
            self._planned.pop(e.run_id, None)
            if not self._fixture_of:
                self._put(("State",), "idle")
