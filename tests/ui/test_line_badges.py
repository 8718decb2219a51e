"""The operator UI's line badges, against real components: the delivery badge in the station
header (the line PostgreSQL behind a TCP proxy, an HTTP MES on loopback, the Mosquitto broker
behind a proxy) appears while a target waits and goes once all is delivered; the reference-drift
badge on a fixture appears from the station's result store and clears when the newest reference
runs are back in control — by the periodic check, and after a reference pack's run."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from ruamel.yaml import YAML

from station.config import load_config
from station.results import ResultStore
from station.ui.app import OperatorApp
from tests.line.conftest import mqtt_broker, pg_roles  # noqa: F401  (skip when absent)
from tests.line.line_helpers import TcpProxy
from tests.line.test_stats import emit_run
from tests.ui.conftest import write_station
from tests.ui.helpers import finished, login, panel, scan, shown, store_runs, until

SIZE = (120, 30)
HOSTILE_REASON = "[bold red]maintenance\x1b[2J"  # markup and a clear-screen in the MES's answer


class _Mes(BaseHTTPRequestHandler):
    """An MES: route checks allowed; uploads answered 503 until ``failing`` is cleared."""

    failing = threading.Event()
    uploads: ClassVar[list] = []  # shared by every request the server handles

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path.endswith("/route-check"):
            return self._answer(200, {"allowed": True, "transaction_id": "TX-9"})
        if type(self).failing.is_set():
            return self._answer(503, {"error": "busy"}, HOSTILE_REASON)
        type(self).uploads.append(body)
        return self._answer(200, {"ok": True})

    def _answer(self, code, body, reason=None):
        data = json.dumps(body).encode()
        self.send_response(code, reason)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def _with(path, **fields) -> None:
    yaml = YAML()
    data = yaml.load(path.read_text())
    data.update(fields)
    with path.open("w") as fh:
        yaml.dump(data, fh)


def _badge(app):
    return app.main_screen.query_one("#delivery-badge")


async def test_delivery_badge_shows_what_waits_and_goes_when_delivered(tmp_path, pg_roles, mqtt_broker):  # noqa: F811
    pg = TcpProxy(5432).up()
    broker = TcpProxy(mqtt_broker[1], mqtt_broker[0]).up()
    mes = ThreadingHTTPServer(("127.0.0.1", 0), _Mes)
    threading.Thread(target=mes.serve_forever, daemon=True).start()
    pg.down()
    broker.down()
    _Mes.failing.set()
    _Mes.uploads = []
    path = write_station(tmp_path)
    results = {"db": str(tmp_path / "results.db"), "synchronous": "NORMAL",
               "postgres_url": pg.url(pg_roles.station_url), "postgres_schema": pg_roles.schema}
    _with(path, results=results, mqtt={"host": "127.0.0.1", "port": broker.port},
          mes={"type": "http", "url": f"http://127.0.0.1:{mes.server_port}/mes", "timeout": 2.0})
    config = load_config(path)
    app = OperatorApp(config, sim=True)
    app.DELIVERY_POLL_S = 0.2
    began = dt.datetime.now().astimezone().replace(second=0, microsecond=0)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await login(pilot, "op1")
            app.backend.session.line.status.down_grace_s = 0.5  # the broker's outage counts sooner
            badge = _badge(app)
            await scan(pilot, app, "F1", "PRM010")
            await pilot.press("enter")
            await until(pilot, lambda: "MQTT" in shown(badge), what="the broker's outage")
            await pilot.press("y")
            await until(pilot, finished(app, "F1"), what="the verdict")
            assert panel(app, "F1").state.verdict == "PASS"  # delivery never changes a verdict
            await until(pilot, lambda: all(k in shown(badge) for k in ("DB:", "MES:", "MQTT:")),
                        what="every target failing on the badge")
            text = shown(badge)
            assert badge.display
            # since when each target fails, in the station's local time: a minute of this test
            minutes = {(began + dt.timedelta(minutes=m)).strftime("%H:%M")
                       for m in range(int((dt.datetime.now().astimezone() - began).total_seconds() // 60) + 2)}
            assert len(re.findall(r"since (\d\d:\d\d)", text)) == 3, text
            assert set(re.findall(r"since (\d\d:\d\d)", text)) <= minutes, (text, minutes)
            assert "DB: cannot connect" in text and "MES: upload: HTTP 503 [bold red]main…" in text
            assert "\x1b" not in text
            assert text.count("1 waiting") == 2  # the run waits for the database and for the MES
            tip = str(badge.tooltip)
            assert "station line status" in tip and pg_roles.schema in tip  # the whole story
            assert "HTTP 503 [bold red]maintenance␛[2J" in tip  # data, not markup

            pg.up()
            broker.up()
            _Mes.failing.clear()
            await until(pilot, lambda: not badge.display, timeout=60, what="the badge to go")
            assert shown(badge) == ""
            assert [(u["transaction_id"], u["record"]["serial"]) for u in _Mes.uploads] == [("TX-9", "PRM010")]
    finally:
        mes.shutdown()
        pg.close()
        broker.close()
    runs = store_runs(config)
    assert [r["serial"] for r in runs] == ["PRM010"] and runs[0]["verdict"] == "PASS"


async def test_no_delivery_badge_when_everything_is_delivered(station_config):
    """A station without line targets, and one whose targets all answer: no badge at all."""
    app = OperatorApp(station_config, sim=True)
    app.DELIVERY_POLL_S = 0.2
    async with app.run_test(size=SIZE) as pilot:
        await login(pilot, "op1")
        await pilot.pause(0.6)
        assert not _badge(app).display and app.delivery_shown is None


# -- reference drift ---------------------------------------------------------------------------

STATION = "EOL-SIM-01"  # the simulated station's id: the runs below are this station's
LIM = {"unit": "Ohm", "min": 0.0, "max": 0.2}
NOISE = [0.3, -0.8, 0.5, -0.2, 0.9, -0.6, 0.1, -0.4, 0.7, -0.1]  # steady, never a rule broken


def _reference_runs(db, first: int, count: int, *, drift_f2: bool) -> None:
    """Runs of the golden pack GOLD-1 on F1 and F2, one a day; F2's contact resistance creeps up
    from day 22 when ``drift_f2``. Simulated development runs, as the simulated station makes."""
    start = dt.date(2026, 1, 1)
    with ResultStore(db) as store:
        for i in range(first, first + count):
            day = (start + dt.timedelta(days=i)).isoformat()
            for fixture in ("F1", "F2"):
                value = 0.100 + 0.001 * NOISE[i % len(NOISE)]
                if fixture == "F2" and drift_f2 and i >= 22:
                    value += 0.004 + 0.0005 * (i - 22)
                emit_run(store, f"g{i}{fixture}", "GOLD-1", day, value, "PASS", limits=LIM,
                         fixture=fixture, name="r_bond", station=STATION, mode="development",
                         simulated=True)


def _drift_station(tmp_path):
    path = write_station(tmp_path)
    yaml = YAML()
    data = yaml.load(path.read_text())
    data["reference_serials"] = ["GOLD-1"]
    data["products"].append({"pattern": "GOLD-[0-9]+", "plan": data["products"][2]["plan"]})
    with path.open("w") as fh:
        yaml.dump(data, fh)
    _reference_runs(tmp_path / "results.db", 0, 30, drift_f2=True)
    return load_config(path)


def _drift(app, fixture):
    return panel(app, fixture).query_one(".drift-badge")


async def test_drift_badge_appears_and_clears_with_the_periodic_check(tmp_path):
    config = _drift_station(tmp_path)
    app = OperatorApp(config, sim=True)
    app.DRIFT_POLL_S = 0.5
    async with app.run_test(size=SIZE) as pilot:
        await login(pilot, "op1")
        f2 = _drift(app, "F2")
        await until(pilot, lambda: f2.display, what="F2's drift badge")
        assert shown(f2).strip() == "REFERENCE DRIFT: cells r_bond"
        assert not _drift(app, "F1").display  # the steady fixture is not flagged
        # the fixture was repaired: the newest reference runs are back in control
        _reference_runs(tmp_path / "results.db", 30, 12, drift_f2=False)
        await until(pilot, lambda: not f2.display, what="F2's drift badge to clear")
        assert shown(f2) == "" and app.drift == {}


async def test_drift_is_checked_again_after_a_reference_pack_run(tmp_path):
    config = _drift_station(tmp_path)
    app = OperatorApp(config, sim=True)  # the periodic check is 10 minutes away: only the run can clear it
    async with app.run_test(size=SIZE) as pilot:
        await login(pilot, "op1")
        f2 = _drift(app, "F2")
        await until(pilot, lambda: f2.display, what="F2's drift badge")
        _reference_runs(tmp_path / "results.db", 30, 12, drift_f2=False)  # runs of another process
        await pilot.pause(1.0)
        assert f2.display  # nothing looked at the store again yet
        await scan(pilot, app, "F1", "GOLD-1")
        await pilot.press("enter")
        await until(pilot, lambda: any(s.__class__.__name__ == "PromptDialog" for s in app.screen_stack),
                    what="the prompt")
        await pilot.press("y")
        await until(pilot, finished(app, "F1"), what="the verdict")
        await until(pilot, lambda: not f2.display, what="F2's drift badge to clear after the run")


@pytest.mark.parametrize("serials", [[], ["NOT-RUN-YET"]])
async def test_no_drift_badge_without_reference_data(tmp_path, serials):
    path = write_station(tmp_path)
    _with(path, reference_serials=serials)
    app = OperatorApp(load_config(path), sim=True)
    app.DRIFT_POLL_S = 0.2
    async with app.run_test(size=SIZE) as pilot:
        await login(pilot, "op1")
        await pilot.pause(0.6)
        assert not _drift(app, "F1").display and not _drift(app, "F2").display and app.drift == {}
