"""Hardware mode in CI: the bench (``station sim serve --speed N --write-station F``) and the
station (``station run ... --station F``, no ``--sim``) in separate processes over real sockets,
and outside clients that look at the bench's physical state the way a technician's tools would
(SCPI over TCP, Modbus TCP, CAN through socketcand).

A probe of the cycler feeds its communication watchdog like any other command would: tests that
rely on the watchdog look at the cycler only after the moment they judge (the CAN observer is
passive: it only listens to what the BMS sends).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import can
import cantools
import yaml
from pymodbus.client import ModbusTcpClient

ROOT = Path(__file__).resolve().parents[2]
DBC = cantools.database.load_file(str(ROOT / "drivers" / "maps" / "eol_bms.dbc"))
PACK_VALUES = DBC.get_message_by_name("EOL_PackValues")
BMS_STATE = DBC.get_message_by_name("EOL_BmsState")
COILS = ("clamp", "lv_power", "ir_hv_plus", "ir_hv_minus", "hvil_break")  # fixture_plc.yaml, from 0

# The lane's time scale. The reference plan is ~1,600 s of station time: at 30x a car-400 run
# takes ~60 s of wall time on the shared 2-core machine (at 40x ~45 s, at 50x ~36 s). Every wall
# stall of the station or the bench counts N times in station time: under a load average of 10
# a DMM round trip once took 24 ms of wall time, 0.95 s of station time at 40x, and the
# contactors' precharge_time (limit 300 ms) failed (445-519 ms at 30x under a load of 13). So a
# busy machine gets 10x; EOL_HARDWARE_SPEED sets another scale (an idle machine takes 50x).
def _default_speed() -> float:
    """30x, or 10x when the machine is already busy (a load average above twice its cores)."""
    busy = os.getloadavg()[0] > 2 * (os.cpu_count() or 1)
    return 10.0 if busy else 30.0


SPEED = float(os.environ.get("EOL_HARDWARE_SPEED") or _default_speed())


def _tcpip(resource: str) -> tuple[str, int]:
    _, host, port, _ = resource.split("::")
    return host, int(port)


@dataclass
class Bench:
    """One ``station sim serve`` process and the station config it wrote."""

    workdir: Path
    speed: float = SPEED
    preset: str = "car-400"
    faults: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    config: dict = field(default_factory=dict)

    @property
    def station_file(self) -> Path:
        return self.workdir / f"bench-{self.preset}.yaml"

    def start(self, timeout: float = 60.0) -> Bench:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.station_file.unlink(missing_ok=True)  # the one this bench writes is the one to wait for
        args = [sys.executable, "-m", "station.cli", "sim", "serve", "--speed", f"{self.speed:g}",
                "--preset", self.preset, "--write-station", str(self.station_file)]
        for fault in self.faults:
            args += ["--fault", fault]
        # held for the bench process's life, closed in stop()
        self._out = open(self.workdir / "bench.out", "w")  # noqa: SIM115
        self._err = open(self.workdir / "bench.err", "w")  # noqa: SIM115
        # its own session: a signal meant for the station never reaches the bench
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=self._out, stderr=self._err, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self.station_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"bench did not write {self.station_file}: {self.stderr()}")
            time.sleep(0.05)
        self.config = yaml.safe_load(self.station_file.read_text())
        return self

    def stderr(self) -> str:
        return (self.workdir / "bench.err").read_text()

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop the bench (if still running); its exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a test may have left it stopped
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        self._err.close()
        return self.proc.returncode

    # -- where the peers are ------------------------------------------------------------------
    def _instrument(self, role: str) -> dict:
        ref = self.config["fixtures"]["F1"]["instruments"][role]
        return self.config["instruments"][ref] if isinstance(ref, str) else ref

    def scpi_address(self, role: str) -> tuple[str, int]:
        return _tcpip(self._instrument(role)["resource"])

    def modbus_address(self, role: str) -> tuple[str, int]:
        host, port = self._instrument(role)["resource"].split("://", 1)[1].split("?")[0].rsplit(":", 1)
        return host, int(port)

    def can_address(self) -> tuple[str, int]:
        query = self._instrument("bms")["resource"].split("?", 1)[1]
        opts = dict(item.split("=", 1) for item in query.split("&"))
        return opts["host"], int(opts["port"])

    # -- outside clients ----------------------------------------------------------------------
    def scpi(self, role: str, *commands: str, timeout: float = 5.0) -> list[str]:
        """Send each command on a fresh connection; the reply line of each query (``?``)."""
        replies = []
        with socket.create_connection(self.scpi_address(role), timeout=timeout) as sock:
            reader = sock.makefile("r", encoding="ascii", newline="\n")
            for command in commands:
                sock.sendall(command.encode("ascii") + b"\n")
                if command.split()[0].endswith("?"):
                    replies.append(reader.readline().strip())
        return replies

    def cycler(self) -> dict:
        """The cycler's output state, measured current (A) and questionable condition bits."""
        out, amps, cond = self.scpi("cycler", "OUTP?", "MEAS:CURR?", "STAT:QUES:COND?")
        return {"output": out == "1", "current": float(amps), "condition": int(cond)}

    def safety(self) -> str:
        """``RUNNING`` or ``STOPPED``: the electrical-safety tester's HV test."""
        return self.scpi("safety", "SAFE:STAT?")[0]

    def bus_voltage(self) -> float:
        """The DC-link voltage as the DMM measures it (V)."""
        return float(self.scpi("dmm", "MEAS:VOLT:DC? 1000")[0])

    def coils(self) -> dict[str, bool]:
        """The fixture PLC's output coils by name (Modbus FC1)."""
        host, port = self.modbus_address("fixture")
        client = ModbusTcpClient(host, port=port, timeout=5)
        assert client.connect(), "fixture PLC unreachable"
        try:
            rsp = client.read_coils(0, count=len(COILS), device_id=1)
        finally:
            client.close()
        assert not rsp.isError(), rsp
        return dict(zip(COILS, rsp.bits[: len(COILS)]))


class CanObserver:
    """Listens to the BMS's frames through the bench's socketcand hub in a thread and keeps
    (wall time, decoded signals) of its state and pack-value frames. Passive: sends nothing."""

    def __init__(self, bench: Bench) -> None:
        host, port = bench.can_address()
        self.bus = can.Bus(interface="socketcand", host=host, port=port, channel="can0", tcp_tune=True)
        self.states: list[tuple[float, dict]] = []
        self.values: list[tuple[float, dict]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.bus.recv(0.2)
            except (can.CanError, OSError, ValueError):
                return  # the bench went away
            if msg is None:
                continue
            if msg.arbitration_id == BMS_STATE.frame_id:
                self.states.append((time.monotonic(), BMS_STATE.decode(msg.data)))
            elif msg.arbitration_id == PACK_VALUES.frame_id:
                self.values.append((time.monotonic(), PACK_VALUES.decode(msg.data)))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.bus.shutdown()

    def first_after(self, since: float, what: str, predicate) -> float | None:
        """Wall seconds from ``since`` to the first ``what`` ("states"/"values") frame for which
        ``predicate(signals)`` holds, or None."""
        for stamp, signals in list(getattr(self, what)):
            if stamp >= since and predicate(signals):
                return stamp - since
        return None

    def last(self, what: str) -> tuple[float, dict] | None:
        frames = getattr(self, what)
        return frames[-1] if frames else None


def contactors_open(state: dict) -> bool:
    return not (state["ContactorMainPlus"] or state["ContactorMainMinus"] or state["ContactorPrecharge"])


def station_args(plan: str, station_file: Path, *, variant: str, serial: str, workdir: Path,
                 sim: bool = False) -> list[str]:
    """``station run`` arguments writing the record to ``workdir/<serial>.json`` and its own store."""
    args = [sys.executable, "-m", "station.cli", "run", plan, "--variant", variant, "--serial", serial,
            "--plain", "--json", str(workdir / f"{serial}.json"), "--db", str(workdir / "station.db")]
    return args + (["--sim"] if sim else ["--station", str(station_file)])


def run_station(args: list[str], *, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run the station to its end; the default bound (240 s at 30x) grows as the scale drops."""
    bound = timeout if timeout is not None else 240.0 * max(1.0, 30.0 / SPEED)
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=bound)


class StationProcess:
    """``station run`` in the background, its plain progress lines collected as they come."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._threads = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines), daemon=True),
                         threading.Thread(target=self._pump, args=(self.proc.stderr, self.errors), daemon=True)]
        for thread in self._threads:
            thread.start()

    @staticmethod
    def _pump(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def wait_for_line(self, text: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no line with {text!r}; rc {self.proc.poll()}\n" + "\n".join(self.lines + self.errors))
            time.sleep(0.02)

    def signal(self, sig: int) -> float:
        """Send ``sig``; the wall time it was sent (time.monotonic)."""
        sent = time.monotonic()
        os.kill(self.proc.pid, sig)
        return sent

    def wait(self, timeout: float = 120.0) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        for thread in self._threads:
            thread.join(timeout=5)
        return code

    @property
    def output(self) -> str:
        return "\n".join(self.lines + self.errors)


def wait_until(predicate, timeout: float, period: float = 0.02):
    """Poll ``predicate()`` until it returns something truthy (returned) or ``timeout`` s pass (None)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(period)
    return None


def load_record(workdir: Path, serial: str) -> dict:
    return json.loads((workdir / f"{serial}.json").read_text())


def measurements(record: dict) -> dict[tuple[str, str], dict]:
    return {(step["path"], m["name"]): m for step in record["steps"] for m in step["measurements"]}
