"""Config before copper: every driver key, resource, port, option and map file is checked before
anything is opened — exit 2 at FILE:LINE:COL, no connection made to any instrument."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


class Listener:
    """A TCP port standing for an instrument: counts the connections it is offered."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def plc():
    listener = Listener()
    yield listener
    listener.close()


def _config(tmp_path: Path, plc_port: int, **override: str) -> Path:
    lines = {
        "cycler": f'{{driver: itech_it6000, resource: "TCPIP::127.0.0.1::{plc_port}::SOCKET"}}',
        "bms": ('{driver: dbc_bms, resource: "can://socketcand/can0?host=127.0.0.1&port=' + str(plc_port)
                + '", options: {cells: 96, temperature_sensors: 16}}'),
        "dmm": f'{{driver: keysight_34465a, resource: "TCPIP::127.0.0.1::{plc_port}::SOCKET"}}',
        "fixture": f'{{driver: modbus_fixture, resource: "modbus-tcp://127.0.0.1:{plc_port}?unit=1"}}',
        "safety": f'{{driver: chroma_19032, resource: "TCPIP::127.0.0.1::{plc_port}::SOCKET"}}',
        "leak": f'{{driver: ateq_leak, resource: "socket://127.0.0.1:{plc_port}"}}',
    }
    lines.update(override)
    body = "\n".join(f"      {role}: {text}" for role, text in lines.items())
    path = tmp_path / "station.yaml"
    path.write_text(textwrap.dedent("""\
        schema_version: 1
        station: {id: T1}
        fixtures:
          F1:
            instruments:
        """) + body + "\n")
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "station.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


BAD = {
    "VISA port": ("cycler", '{driver: itech_it6000, resource: "TCPIP::127.0.0.1::70000::SOCKET"}',
                  ":6:", "port 70000 is outside 1..65535"),
    "CAN port": ("bms", '{driver: dbc_bms, resource: "can://socketcand/can0?host=127.0.0.1&port=65536", '
                        'options: {cells: 96, temperature_sensors: 16}}', ":7:", "port 65536 is outside 1..65535"),
    "CAN interface": ("bms", '{driver: dbc_bms, resource: "can://sockcand/can0", '
                             'options: {cells: 96, temperature_sensors: 16}}', ":7:", "unknown interface 'sockcand'"),
    "misspelt option": ("safety", '{driver: chroma_19032, resource: "TCPIP::127.0.0.1::5025::SOCKET", '
                                  'options: {pol: 0.5}}', ":10:", "unknown option 'pol'; did you mean 'poll'?"),
    "wrong transport": ("cycler", '{driver: itech_it6000, resource: "modbus-tcp://127.0.0.1:502"}',
                        ":6:", "is not a VISA or serial resource"),
    "serial port": ("leak", '{driver: ateq_leak, resource: "socket://127.0.0.1:0"}', ":11:", "port 0 is outside"),
    "signal map": ("bms", '{driver: dbc_bms, resource: "can://socketcand/can0?host=127.0.0.1&port=29536", '
                          'options: {signals: /nonexistent/map.yaml}}', ":7:", "map.yaml"),
    # a role bound to a driver of another kind (issue 15): the role table's capability, by name
    "capability": ("cycler", '{driver: keysight_34465a, resource: "TCPIP::127.0.0.1::5025::SOCKET"}', ":6:",
                   "cycler (keysight_34465a): the cycler role needs a Cycler; Keysight34465A lacks set_output, "
                   "set_voltage"),
    "driver key": ("dmm", '{driver: keysight_34456a, resource: "TCPIP::127.0.0.1::5025::SOCKET"}',
                   ":8:", "unknown driver 'keysight_34456a'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_instrument_config_is_exit_2_located_and_nothing_is_opened(tmp_path, plc, case):
    role, text, line, message = BAD[case]
    station = _config(tmp_path, plc.port, **{role: text})
    proc = _run("run", "test_plans/smoke.yaml", "--station", str(station), "--serial", "SN1",
                "--db", str(tmp_path / "r.db"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{station}{line}" in proc.stderr and message in proc.stderr, proc.stderr
    assert plc.accepted == 0  # no instrument was connected to, let alone switched
    assert not (tmp_path / "r.db").exists()  # and no run was recorded

    check = _run("validate", "test_plans/smoke.yaml", "--station", str(station))
    assert check.returncode == 2 and message in check.stderr, check.stderr


def test_a_wrong_kind_of_driver_is_listed_beside_the_configs_other_problems(tmp_path, plc):
    """One validate lists every problem: the capability check is not held back until the rest
    of the config loads."""
    station = _config(tmp_path, plc.port, cycler=BAD["capability"][1], dmm=BAD["driver key"][1])
    check = _run("validate", "test_plans/smoke.yaml", "--station", str(station))
    assert check.returncode == 2 and "Traceback" not in check.stderr, check.stderr
    assert f"{station}:8:" in check.stderr and "unknown driver 'keysight_34456a'" in check.stderr, check.stderr
    assert f"{station}:6:" in check.stderr and BAD["capability"][3] in check.stderr, check.stderr
    assert check.stderr.count("the cycler role needs a Cycler") == 1, check.stderr


def test_a_simulated_station_binding_a_cycler_to_a_dmm_driver_is_refused_before_the_simulator_starts(tmp_path):
    from station.config import SIM_CONFIG

    text = Path(SIM_CONFIG).read_text()
    assert text.count("cycler:  {driver: itech_it6000,") == 2
    station = tmp_path / "sim_station.yaml"
    station.write_text(text.replace("cycler:  {driver: itech_it6000,", "cycler:  {driver: keysight_34465a,", 1)
                       .replace("../test_plans/", str(ROOT / "test_plans") + "/"))
    line = next(i for i, row in enumerate(station.read_text().splitlines(), 1) if "keysight_34465a, resource: \"TCPIP::127.0.0.1::{F1.cycler" in row)
    for args in (("validate", "test_plans/smoke.yaml", "--station", str(station)),
                 ("run", "test_plans/smoke.yaml", "--sim", "--station", str(station), "--serial", "SN1",
                  "--db", str(tmp_path / "r.db"))):
        proc = _run(*args)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"{station}:{line}:" in proc.stderr and "the cycler role needs a Cycler" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r.db").exists()


def test_every_problem_of_a_fixture_is_reported_at_once(tmp_path, plc):
    station = _config(tmp_path, plc.port, cycler=BAD["VISA port"][1], bms=BAD["CAN port"][1])
    proc = _run("validate", "test_plans/smoke.yaml", "--station", str(station))
    assert proc.returncode == 2
    assert "port 70000" in proc.stderr and "port 65536" in proc.stderr


def test_a_good_hardware_config_validates(tmp_path, plc):
    proc = _run("validate", "test_plans/smoke.yaml", "--station", str(_config(tmp_path, plc.port)))
    assert proc.returncode == 0, proc.stderr
    assert plc.accepted == 0


def test_a_shared_instruments_problem_names_it_as_written_at_its_own_line(tmp_path, plc):
    # the fixtures call it `safety`; the user wrote `safety_tester`, once, under instruments:
    station = _config(tmp_path, plc.port, safety="safety_tester")
    text = station.read_text().replace("fixtures:\n", textwrap.dedent(f"""\
        instruments:
          safety_tester: {{driver: chroma_19032, resource: "TCPIP::127.0.0.1::{plc.port}::SOCKET", shared: true,
                          options: {{pol: 0.5}}}}
        fixtures:
        """))
    station.write_text(text)
    proc = _run("validate", "test_plans/smoke.yaml", "--station", str(station))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert (f"{station}:5:34: instrument 'safety_tester' (chroma_19032): unknown option 'pol'; "
            "did you mean 'poll'?") in proc.stderr, proc.stderr
    assert "safety (chroma_19032)" not in proc.stderr
    assert plc.accepted == 0
