"""Shared rig for the reliability suite: tiny plans, in-process simulated runs, figure reporting.

Figures are written to ``$RELIABILITY_FIGURES`` (default ``<tmp>/eol-reliability/figures.txt``)
as well as printed, so a CI log shows them whether or not pytest captures output.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from pathlib import Path

from station.config import SIM_CONFIG, LoadedConfig, load_config

HERE = Path(__file__).resolve().parent

# One long HV step: the cycler charges for up to an hour (virtual) under interlocks and monitors.
HV_PLAN = """\
schema_version: 1
id: rel-hv
version: 1.0.0
title: Reliability probe, one long HV step
product: traction-pack
instruments: [fixture, bms, cycler]
setup:
  - fixture.require: [estop_released, guard_closed, pack_present]
  - fixture.clamp: true
  - fixture.lv_power: true
  - bms.wake: {within: 5 s}
main:
  - id: hv
    requires: [hv_interlock]
    monitors:
%(monitors)s
    steps:
      - id: close
        bms.close_contactors: {within: 3 s}
      - id: charge
        timeout: %(timeout)s
        cycler.charge_to_soc: {target: 95 %%, current: 20 A, capacity: 210 Ah, v_max: 403 V,
                               v_min: 288 V, poll: %(poll)s}
"""

DEFAULT_MONITORS = "      - {signal: bms.cell_voltage_max, max: 4.2 V, period: %(period)s}\n"


def hv_plan(tmp: Path, *, monitors: str | None = None, period: str = "10 ms", timeout: str = "3600 s",
            poll: str = "1 s", name: str = "rel_hv.yaml") -> Path:
    """Write the one-HV-step plan; ``monitors`` are YAML list items (6-space indent)."""
    mons = (monitors if monitors is not None else DEFAULT_MONITORS) % {"period": period}
    path = tmp / name
    path.write_text(HV_PLAN % {"monitors": mons.rstrip("\n"), "timeout": timeout, "poll": poll})
    return path


def sim_config(**changes) -> LoadedConfig:
    """The ``--sim`` station config with top-level fields changed (e.g. ``interlock_period``)."""
    loaded = load_config(SIM_CONFIG)
    if changes:
        loaded = LoadedConfig(loaded.config.model_copy(update=changes), loaded.path)
    return loaded


def figures_path() -> Path:
    env = os.environ.get("RELIABILITY_FIGURES")
    path = Path(env) if env else Path(tempfile.gettempdir()) / "eol-reliability" / "figures.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def report(title: str, lines: list[str] | dict) -> None:
    """Print a block of figures and append it to the figures file."""
    body = lines if isinstance(lines, list) else [json.dumps(lines, sort_keys=True)]
    text = "\n".join([f"== {title}", *body]) + "\n"
    print("\n" + text, flush=True)
    with figures_path().open("a", encoding="utf-8") as fh:
        fh.write(text)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def distribution(values_s: list[float]) -> dict[str, float]:
    """n, median, p99, max of latencies given in seconds, reported in ms."""
    return {"n": len(values_s), "median_ms": round(statistics.median(values_s) * 1e3, 2),
            "p99_ms": round(percentile(values_s, 99) * 1e3, 2), "max_ms": round(max(values_s) * 1e3, 2)}


def visa_nodelay_patch():
    """Proposed fix for drivers/transports/visa.py, applied from a test: TCP_NODELAY on VISA sockets.

    pyvisa-py 0.8 wires VI_ATTR_TCPIP_NODELAY's setter to a stub that raises, and leaves Nagle
    on: a driver's write-then-query (``OUTP OFF`` + ``SYST:ERR?``) then waits ~40 ms for the
    peer's delayed ACK. Returns (object, name, replacement) for ``monkeypatch.setattr``.
    """
    import socket

    from drivers.transports.visa import VisaTransport

    original = VisaTransport._open_blocking

    def _open_blocking(self) -> None:
        original(self)
        session = getattr(self._rm.visalib, "sessions", {}).get(self._inst.session)
        sock = getattr(session, "interface", None)
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    return VisaTransport, "_open_blocking", _open_blocking


def without_roles(loaded: LoadedConfig, fixture: str, roles: set[str]) -> LoadedConfig:
    """The config with ``roles`` removed from one fixture (e.g. no DMM: no bus confirmation wait)."""
    cfg = loaded.config
    fx = cfg.fixtures[fixture]
    kept = {r: ref for r, ref in fx.instruments.items() if r not in roles}
    fixtures = {**cfg.fixtures, fixture: fx.model_copy(update={"instruments": kept})}
    return LoadedConfig(cfg.model_copy(update={"fixtures": fixtures}), loaded.path)


def with_journal(loaded: LoadedConfig, synchronous: str) -> LoadedConfig:
    """The config with the result journal's ``synchronous`` mode changed (FULL or NORMAL)."""
    cfg = loaded.config
    results = cfg.results.model_copy(update={"synchronous": synchronous})
    return LoadedConfig(cfg.model_copy(update={"results": results}), loaded.path)
