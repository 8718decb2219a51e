"""``station sim serve`` as a separate process, joined by stock third-party clients from this one:
python-can's ``socketcand`` interface + cantools, udsoncan over can-isotp, pyvisa, pymodbus."""

from __future__ import annotations

import asyncio
import io
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import can
import cantools
import isotp
import pytest
import pyvisa
import udsoncan
from pymodbus.client import ModbusTcpClient
from udsoncan.client import Client
from udsoncan.connections import PythonIsoTpConnection

from drivers.bms.did_table import load_did_table
from drivers.clock import ScaledTimeLoop
from drivers.transports import loopbus
from sim.serve import check_speed, serve, serve_command

ROOT = Path(__file__).resolve().parents[2]
DBC = cantools.database.load_file(str(ROOT / "drivers" / "maps" / "eol_bms.dbc"))
NAMES = {"cycler-scpi", "cycler-modbus", "dmm-scpi", "safety-scpi", "fixture-modbus", "leak-serial", "bms-can"}
ADDRESS = re.compile(r"(?:socket://)?127\.0\.0\.1:(\d+)")
SW_FAULT = "9.9.9"


def start_server(*args: str) -> tuple[subprocess.Popen, dict[str, list[str]]]:
    """Start ``station sim serve`` and read its endpoint lines (name -> remaining columns)."""
    proc = subprocess.Popen([sys.executable, "-m", "station.cli", "sim", "serve", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    # A reader thread, not select(): the pipe's text buffer may already hold the next lines.
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    endpoints: dict[str, list[str]] = {}
    while len(endpoints) < len(NAMES):
        try:
            line = lines.get(timeout=20)
        except queue.Empty:
            proc.kill()
            raise AssertionError(f"no endpoint lines within 20 s: {proc.stderr.read()}") from None
        name, *rest = line.split()
        endpoints[name] = rest
    return proc, endpoints


def stop_server(proc: subprocess.Popen, sig: int) -> tuple[int, float, str]:
    """(exit code, seconds to exit, stderr) after sending ``sig``."""
    start = time.monotonic()
    proc.send_signal(sig)
    try:
        code = proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, time.monotonic() - start, proc.stderr.read()


def host_port(endpoint: list[str]) -> tuple[str, int]:
    match = next(ADDRESS.fullmatch(col) for col in endpoint if ADDRESS.fullmatch(col))
    return "127.0.0.1", int(match[1])


@pytest.fixture(scope="module")
def server():
    proc, endpoints = start_server("--fault", f"wrong_sw_version:version={SW_FAULT}")
    yield proc, endpoints
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture
def canbus(server):
    host, port = host_port(server[1]["bms-can"][1:])
    bus = can.Bus(interface="socketcand", host=host, port=port, channel="can0", tcp_tune=True)
    yield bus
    bus.shutdown()


def test_one_line_per_endpoint_each_on_loopback(server):
    _proc, endpoints = server
    assert set(endpoints) == NAMES
    for name, cols in endpoints.items():
        assert any(ADDRESS.fullmatch(col) for col in cols), (name, cols)
    assert endpoints["bms-can"][:1] == ["socketcand"] and endpoints["bms-can"][2:4] == ["channel", "can0"]
    assert endpoints["leak-serial"][0].startswith("socket://127.0.0.1:")


def test_live_bms_frames_decode_with_cantools(canbus):
    seen: dict[str, dict] = {}
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and len(seen) < 5:
        msg = canbus.recv(0.5)
        if msg is not None and msg.arbitration_id in {m.frame_id for m in DBC.messages}:
            seen[DBC.get_message_by_frame_id(msg.arbitration_id).name] = DBC.decode_message(
                msg.arbitration_id, msg.data)
    assert {"EOL_PackValues", "EOL_BmsState", "EOL_CellVoltages"} <= set(seen)
    pack = seen["EOL_PackValues"]
    volts = next(v for k, v in pack.items() if "oltage" in k)
    assert 300 < volts < 450, pack  # the car-400 pack, awake (serve switches LV power on)


def test_uds_over_isotp_reads_the_ecu_serial_and_the_injected_sw_version(canbus):
    notifier = can.Notifier(canbus, [])
    stack = isotp.NotifierBasedCanStack(
        canbus, notifier, address=isotp.Address(isotp.AddressingMode.Normal_11bits, txid=0x7E4, rxid=0x7EC),
        params={"stmin": 0, "blocksize": 0})
    config = dict(udsoncan.configs.default_client_config)
    config["data_identifiers"] = {0xF18C: udsoncan.AsciiCodec(16), 0xF189: udsoncan.AsciiCodec(8)}
    try:
        with Client(PythonIsoTpConnection(stack), config=config, request_timeout=2) as client:
            values = client.read_data_by_identifier([0xF18C, 0xF189]).service_data.values
    finally:
        notifier.stop()
    assert values[0xF18C].encode() == load_did_table()[0xF18C].default  # the table's raw bytes
    assert values[0xF189].strip() == SW_FAULT  # the --fault was armed at start


def test_cycler_answers_idn_over_pyvisa(server):
    host, port = host_port(server[1]["cycler-scpi"])
    assert server[1]["cycler-scpi"][1] == f"TCPIP::{host}::{port}::SOCKET"
    rm = pyvisa.ResourceManager("@py")
    inst = rm.open_resource(f"TCPIP::{host}::{port}::SOCKET", read_termination="\n", write_termination="\n",
                            timeout=2000)
    try:
        assert inst.query("*IDN?").startswith("ITECH Ltd., IT60")
    finally:
        inst.close()
        rm.close()


def test_fixture_plc_over_pymodbus_shows_lv_power_on(server):
    host, port = host_port(server[1]["fixture-modbus"])
    client = ModbusTcpClient(host, port=port, timeout=2)
    assert client.connect()
    try:
        coils = client.read_coils(0, count=2, device_id=1)
        inputs = client.read_discrete_inputs(0, count=3, device_id=1)
        bad = client.read_coils(40, count=1, device_id=1)
    finally:
        client.close()
    assert not coils.isError() and coils.bits[:2] == [False, True]  # clamp off, lv_power on
    assert not inputs.isError() and inputs.bits[:3] == [True, True, True]  # e-stop released, guard, pack
    assert bad.isError() and bad.exception_code == 2  # unmapped: a real Modbus exception


def test_sigterm_stops_every_peer_and_exits_0(server):
    proc, endpoints = server
    code, seconds, stderr = stop_server(proc, signal.SIGTERM)
    assert (code, "Traceback" in stderr) == (0, False), stderr
    assert seconds < 5
    with pytest.raises(ConnectionRefusedError):  # the hub is gone with the process
        socket.create_connection(host_port(endpoints["bms-can"][1:]), timeout=1).close()


def test_ctrl_c_at_ten_times_speed_exits_0():
    proc, endpoints = start_server("--preset", "bus-700", "--speed", "10")
    assert set(endpoints) == NAMES
    code, seconds, stderr = stop_server(proc, signal.SIGINT)
    assert (code, "Traceback" in stderr) == (0, False), stderr
    assert "speed 10x" in stderr and seconds < 5


def test_sighup_stops_the_bench_like_sigterm():
    proc, _endpoints = start_server("--speed", "20")
    code, seconds, stderr = stop_server(proc, signal.SIGHUP)
    assert (code, "Traceback" in stderr) == (0, False), stderr
    assert "SIGHUP: stopping the bench" in stderr and seconds < 5


@pytest.mark.parametrize("kwargs, complaint", [
    ({"preset": "truck-999", "faults": [], "speed": 1.0}, "unknown preset 'truck-999'"),
    ({"preset": "car-400", "faults": ["weak_cel"], "speed": 1.0}, "did you mean 'weak_cell'"),
    ({"preset": "car-400", "faults": ["weak_cell:factor"], "speed": 1.0}, "bad fault parameter"),
    ({"preset": "car-400", "faults": [], "speed": 0.0}, "--speed must be"),
])
def test_bad_arguments_exit_2_before_anything_starts(capsys, kwargs, complaint):
    assert serve_command(**kwargs) == 2
    assert complaint in capsys.readouterr().err


def test_in_process_serve_prints_endpoints_then_stops_and_leaves_the_can_channel():
    async def main():
        before = set(loopbus._channels)
        out, err, stop = io.StringIO(), io.StringIO(), asyncio.Event()
        task = asyncio.create_task(serve("car-400", [("dtc_present", {})], out=out, err=err, stop=stop))
        while out.getvalue().count("\n") < len(NAMES):
            assert not task.done(), err.getvalue()
            await asyncio.sleep(0.01)
        channels = set(loopbus._channels) - before
        stop.set()
        return await task, out.getvalue(), err.getvalue(), channels

    code, out, err, channels = asyncio.run(main())
    assert code == 0 and len(out.splitlines()) == len(NAMES)
    assert "LV power ON" in err and "faults: dtc_present" in err
    assert channels and not channels & set(loopbus._channels)  # BMS and hub nodes left the bus


def test_scaled_loop_runs_its_clock_speed_times_faster():
    async def nap():
        loop = asyncio.get_running_loop()
        t0, w0 = loop.time(), time.monotonic()
        await asyncio.sleep(2.0)
        return loop.time() - t0, time.monotonic() - w0

    with asyncio.Runner(loop_factory=lambda: ScaledTimeLoop(20)) as runner:
        loop_s, wall_s = runner.run(nap())
    assert loop_s >= 2.0 and wall_s < 0.5
    assert loop_s / wall_s == pytest.approx(20, rel=0.05)
    for bad in (0, -1, float("inf"), float("nan"), 1000):
        with pytest.raises(ValueError):
            check_speed(bad)


def test_a_fault_that_cannot_be_armed_exits_3_and_stops_what_started():
    async def main():
        before, err = set(loopbus._channels), io.StringIO()
        code = await serve("car-400", [("bond_high", {"point": "BP99"})], out=io.StringIO(), err=err)
        return code, err.getvalue(), set(loopbus._channels) - before

    code, err, left = asyncio.run(main())
    assert (code, left) == (3, set())
    assert "cannot start the bench: no bonding point 'BP99'" in err
