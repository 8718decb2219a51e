"""The station's state over OPC UA (asyncua server) read by an asyncua client on loopback:
fixtures, current step, last verdict, key measurements, alarms; read-only by default."""

from __future__ import annotations

import asyncio
import threading

import pytest

from station import clock
from station.events import MeasurementTaken, MonitorTripped, RunFinished, RunStarted, StepStarted
from tests.line.line_helpers import run_many, write_station

asyncua = pytest.importorskip("asyncua")
from asyncua import Client, ua  # noqa: E402

from station.line.opcua_server import OpcUaStatus  # noqa: E402

U = "2026-11-25T08:00:00.000+00:00"


async def _read(endpoint: str, station: str, paths: list[str], write: str | None = None):
    async with Client(endpoint, timeout=10) as client:
        ns = await client.get_namespace_index(f"urn:eol-station:{station}")
        root = await client.nodes.objects.get_child(f"{ns}:{station}")
        out = {}
        for path in paths:
            node = await root.get_child([f"{ns}:{p}" for p in path.split(".")])
            out[path] = await node.read_value()
        if write is not None:
            node = await root.get_child([f"{ns}:{p}" for p in write.split(".")])
            try:
                await node.write_value("hacked")
                out["write"] = "accepted"
            except ua.UaStatusCodeError as exc:
                out["write"] = type(exc).__name__
        return out


async def _login(endpoint: str) -> str:
    client = Client(endpoint, timeout=10)
    client.set_user("eve")
    client.set_password("guess")
    try:
        async with client:
            return "accepted"
    except Exception as exc:  # whatever the refusal looks like, it is not a session
        return type(exc).__name__


def _in_thread(coro):
    result = {}
    t = threading.Thread(target=lambda: result.update(value=asyncio.run(coro)))
    t.start()
    t.join(60)
    return result["value"]


def test_state_as_opc_ua_read_only_by_default():
    server = OpcUaStatus("EOL-O", ["F1", "F2"], port=0).start()
    try:
        assert server.endpoint.startswith("opc.tcp://127.0.0.1:") and server.port > 0
        server.handle(RunStarted("r1", U, 0.0, "PK-7", "pack-eol", "1", "t", "p", "ab", None,
                                 {}, "EOL-O", "F1", "op", "0.1", False, planned_steps=2))
        for path in ("main/a", "main/a", "main/b", "teardown/off"):  # a retry, an extra step
            server.handle(StepStarted("r1", U, 1.0, path, "x", "x", "station.wait", "main"))
        server.handle(MeasurementTaken("r1", U, 1.0, "main/iso", "resistance", 5.2e8, "ohm",
                                       {"min": 2e7}, "pass"))
        server.handle(MeasurementTaken("r1", U, 1.0, "main/id", "ecu_serial", "BMS42", "", {},
                                       "pass"))
        server.handle(MonitorTripped("r1", U, 2.0, "main", "bms.cell_temperature_max", 47.5,
                                     "max 45 degC"))
        server.delivery({"pg:x": {"backlog": 4, "error": "connection refused"}})
        assert server.flush(10)
        running = _in_thread(_read(server.endpoint, "EOL-O", [
            "State", "Fixtures.F1.State", "Fixtures.F1.Serial", "Fixtures.F1.StepIndex",
            "Fixtures.F1.PlannedSteps", "Fixtures.F1.ProgressPct", "Fixtures.F1.CurrentStep",
            "Fixtures.F1.Measurements.main/iso/resistance",
            "Fixtures.F1.Measurements.main/id/ecu_serial", "Fixtures.F1.Alarm",
            "Fixtures.F1.AlarmMessage", "Fixtures.F2.State", "DeliveryAlarm",
            "DeliveryBacklog"], write="Fixtures.F1.Serial"))
        login = _in_thread(_login(server.endpoint))
        server.handle(RunFinished("r1", U, 3.0, "FAIL", "limits", 3.0))
        assert server.flush(10)
        done = _in_thread(_read(server.endpoint, "EOL-O", [
            "State", "Fixtures.F1.State", "Fixtures.F1.LastVerdict", "Fixtures.F1.Serial"]))
    finally:
        server.stop()
    assert running["State"] == "running" and running["Fixtures.F1.State"] == "running"
    assert running["Fixtures.F1.Serial"] == "PK-7" and running["Fixtures.F2.State"] == "idle"
    assert (running["Fixtures.F1.StepIndex"], running["Fixtures.F1.PlannedSteps"]) == (3, 3)
    assert running["Fixtures.F1.ProgressPct"] == 100.0
    assert running["Fixtures.F1.CurrentStep"] == "teardown/off"
    assert running["Fixtures.F1.Measurements.main/iso/resistance"] == 5.2e8
    assert running["Fixtures.F1.Measurements.main/id/ecu_serial"] == "BMS42"
    assert running["Fixtures.F1.Alarm"] is True and "47.5" in running["Fixtures.F1.AlarmMessage"]
    assert running["DeliveryAlarm"] is True and running["DeliveryBacklog"] == 4
    assert running["write"] in ("BadUserAccessDenied", "BadNotWritable")  # read-only
    assert login != "accepted"  # anonymous only: no username login is offered
    assert done == {"State": "idle", "Fixtures.F1.State": "finished",
                    "Fixtures.F1.LastVerdict": "FAIL", "Fixtures.F1.Serial": "PK-7"}


def test_a_station_session_serves_its_runs_over_opc_ua(tmp_path):
    config = write_station(tmp_path / "st", "EOL-OS", extra="opcua: {port: 0}\n")
    seen = []

    def after_each(session, run_id):
        opc = session.line.opcua
        assert opc.flush(10)
        seen.append(_in_thread(_read(opc.endpoint, "EOL-OS", [
            "Fixtures.F1.RunId", "Fixtures.F1.LastVerdict",
            "Fixtures.F1.Measurements.main/cells/cell_v_mean"])))
        seen[-1]["expected"] = run_id

    clock.run(run_many(config, 2, after_each=after_each), virtual=True)
    assert [s["Fixtures.F1.RunId"] for s in seen] == [s["expected"] for s in seen]
    assert {s["Fixtures.F1.LastVerdict"] for s in seen} == {"PASS"}
    assert seen[0]["Fixtures.F1.Measurements.main/cells/cell_v_mean"] == pytest.approx(3.31)
