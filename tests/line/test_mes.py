"""MES hooks: file MES, HTTP MES against a real loopback server, the fake, the wiring."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import ClassVar

import pytest

from station import clock
from station.line.config import LineConfigFields
from station.line.mes import (
    FakeMes,
    FileMes,
    HttpMes,
    MesError,
    RouteDecision,
    transaction_id_of,
    transaction_log,
)
from station.line.services import LineServices, RouteRefused, RouteUnanswered


def test_file_mes_routes_and_uploads(tmp_path):
    mes = FileMes(tmp_path / "mes")
    (tmp_path / "mes" / "route").mkdir(parents=True)
    (tmp_path / "mes" / "route" / "PK-2.json").write_text(
        json.dumps({"allowed": False, "reason": "open NCR 4711"}))
    ok = clock.run(mes.route_check("PK-1", "EOL-1", "pack-eol"))
    blocked = clock.run(mes.route_check("PK-2", "EOL-1", "pack-eol"))
    assert ok.allowed and len(ok.transaction_id) == 32
    assert (blocked.allowed, blocked.reason) == (False, "open NCR 4711")
    check = json.loads((tmp_path / "mes" / "checks" / f"{ok.transaction_id}.json").read_text())
    assert (check["serial"], check["station"], check["plan"]) == ("PK-1", "EOL-1", "pack-eol")
    clock.run(mes.upload({"run_id": "r1", "verdict": "PASS", "x": float("nan")}, ok.transaction_id))
    body = json.loads((tmp_path / "mes" / "uploads" / f"{ok.transaction_id}.json").read_text())
    assert body["transaction_id"] == ok.transaction_id and body["record"]["verdict"] == "PASS"
    assert body["record"]["x"] == "nan"  # strict JSON for the MES


def test_file_mes_never_lets_a_serial_escape_its_folder(tmp_path):
    mes = FileMes(tmp_path / "mes", require_known=True)
    decision = clock.run(mes.route_check("../../etc/passwd", "EOL-1", "p"))
    assert not decision.allowed and "unknown to the MES" in decision.reason
    assert sorted(p.parent.name for p in (tmp_path / "mes").rglob("*.json")) == ["checks"]
    (tmp_path / "mes" / "route").mkdir()
    (tmp_path / "mes" / "route" / "X.json").write_text("[1]")
    with pytest.raises(MesError, match=r"file MES .*route check of 'X'"):
        clock.run(mes.route_check("X", "EOL-1", "p"))


class _MesHandler(BaseHTTPRequestHandler):
    calls: ClassVar[list] = []

    def do_POST(self):  # http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.calls.append((self.path, body, self.headers.get("X-Api-Key")))
        if self.path.endswith("/route-check"):
            answer = {"allowed": body["serial"] != "BAD", "reason": "blocked" if
                      body["serial"] == "BAD" else "", "transaction_id": "T-42"}
        elif body.get("transaction_id") == "T-500":
            self.send_error(500, "MES down")
            return
        else:
            answer = {"ok": True}
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def mes_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _MesHandler)
    _MesHandler.calls = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/eol", _MesHandler.calls
    server.shutdown()
    server.server_close()


def test_http_mes_against_a_loopback_server(mes_server):
    base, calls = mes_server
    mes = HttpMes(base, timeout_s=2, headers={"X-Api-Key": "k1"})

    async def scenario():
        ok = await mes.route_check("PK-1", "EOL-1", "pack-eol")
        bad = await mes.route_check("BAD", "EOL-1", "pack-eol")
        await mes.upload({"run_id": "r1", "verdict": "PASS"}, ok.transaction_id)
        return ok, bad

    ok, bad = clock.run(scenario(), virtual=True)  # executor work holds the virtual clock
    assert ok == RouteDecision(True, "", "T-42") and not bad.allowed and bad.reason == "blocked"
    assert calls[0] == ("/eol/route-check", {"serial": "PK-1", "station": "EOL-1",
                                             "plan": "pack-eol"}, "k1")
    assert calls[2][:2] == ("/eol/upload", {"transaction_id": "T-42",
                                            "record": {"run_id": "r1", "verdict": "PASS"}})
    with pytest.raises(MesError, match=r"HTTP MES .*/eol: upload: HTTP 500"):
        clock.run(mes.upload({"run_id": "r2"}, "T-500"))


def test_http_mes_unreachable_is_a_typed_error():
    mes = HttpMes("http://127.0.0.1:1/eol", timeout_s=1)
    with pytest.raises(MesError, match="route-check"):
        clock.run(mes.route_check("PK-1", "EOL-1", "p"))
    with pytest.raises(MesError, match="http:// or https://"):
        HttpMes("ftp://x")


def test_services_refuse_a_blocked_serial_and_map_an_unanswered_check():
    fake = FakeMes(blocked={"PK-9": "scrap"})
    line = LineServices(mes=fake)

    async def scenario():
        decision = await line.route_check("PK-1", "EOL-1", "pack-eol")
        with pytest.raises(RouteRefused, match=r"PK-9.*scrap"):
            await line.route_check("PK-9", "EOL-1", "pack-eol")
        down = LineServices(mes=HttpMes("http://127.0.0.1:1/eol", timeout_s=1))
        with pytest.raises(RouteUnanswered, match=r"got no answer.*route-check"):
            await down.route_check("PK-1", "EOL-1", "pack-eol")
        return decision

    decision = clock.run(scenario())
    assert transaction_id_of({"mes_transaction_id": decision.transaction_id}) == "fake-1"
    assert transaction_id_of({"log": [{"message": transaction_log(decision)}]}) == "fake-1"


def test_services_from_config_build_what_is_named(tmp_path):
    fields = LineConfigFields.model_validate(
        {"mqtt": {"port": 1884, "prefix": "plant"}, "mes": {"type": "file", "folder": "mes"}})
    cfg = SimpleNamespace(station_id="EOL-7", mqtt=fields.mqtt, mes=fields.mes,
                          results=SimpleNamespace(postgres_url="postgresql://u@127.0.0.1:1/x",
                                                  postgres_schema="line1"))
    loaded = SimpleNamespace(config=cfg, resolve_path=lambda p: tmp_path / p,
                             fixture_ids=lambda: ["F1"])
    line = LineServices.from_config(loaded, tmp_path / "station.db")  # builds, touches nothing
    assert line.status.topic("F1", "step") == "plant/EOL-7/F1/step" and line.status.port == 1884
    assert line.mes.folder == tmp_path / "mes"
    assert line.forwarder.pg.name == "postgresql://u@127.0.0.1:1/x#line1"
    assert line.forwarder.target is None  # the database's identity: known once connected
    assert not (tmp_path / "mes").exists() and len(line.subscribers) == 2
    with pytest.raises(ValueError):
        LineConfigFields.model_validate({"mes": {"type": "http"}})  # url missing
