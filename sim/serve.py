"""``station sim serve``: the simulated bench as a standalone process on loopback.

One fixture (``F1``) with the chosen pack preset, every peer served on 127.0.0.1 (port 0), the
BMS's in-process CAN channel bridged to TCP by a socketcand-protocol hub (``sim.socketcand_hub``)
so python-can's stock ``socketcand`` interface joins it from another process. LV power is
switched on at start so the BMS is awake (an outside tool can switch it off with the fixture
PLC's ``lv_power`` coil), except for a bench that writes a station config: that one waits for
its station like a real fixture, LV power off until the plan switches it on (so a plan's
wake-up is measured as on the line). Faults are armed at start: timed ones count from then.

Prints one line per endpoint on stdout, name first, then the address as ``127.0.0.1:PORT``
(the leak tester's serial line as ``socket://127.0.0.1:PORT``), then the station resource
string for it. With ``station_file``, also writes a ready station config for those endpoints
(``sim.station_file``), atomically, once every endpoint is up. Runs on real time, scaled by
``speed`` (``drivers.clock``), until SIGINT, SIGTERM or SIGHUP; then stops every peer and
returns 0. Exit 2: bad preset, fault, speed or station file directory (nothing was started);
exit 3: the bench could not start or the station file could not be written.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import TextIO

from drivers.clock import loop_factory, scale_problem
from sim.faults import arm_faults, check_fault, fault_reach
from sim.pack.catalogue import did_you_mean, load_pack
from sim.pack.presets import PRESETS
from sim.station_file import station_yaml, write_atomically

EXIT_OK, EXIT_USAGE, EXIT_ERROR = 0, 2, 3
FIXTURE = "F1"
CAN_NAME = "can0"  # the bus name socketcand clients open
UDS_IDS = (0x7E4, 0x7EC)  # the simulated BMS's UDS request / response ids

Fault = tuple[str, dict[str, str]]


def parse_fault(text: str) -> Fault:
    """``NAME[:k=v,...]`` -> (name, params); ValueError if a parameter has no ``=``."""
    name, _, rest = text.partition(":")
    params: dict[str, str] = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"bad fault parameter {item!r} in {text!r}; use NAME:k=v,k2=v2")
        params[key.strip()] = value.strip()
    return name.strip(), params


def check_speed(speed: float) -> None:
    """Raise ValueError unless ``speed`` is a usable time scale (``drivers.clock.MAX_SCALE``)."""
    if (problem := scale_problem(speed)) is not None:
        raise ValueError(f"--speed {problem}")


def check_arguments(preset: str, faults: list[str], speed: float,
                    station_file: str | None = None) -> tuple[list[Fault], list[str]]:
    """(parsed faults, problems); every problem is one line for stderr."""
    problems, parsed = [], []
    if isinstance(preset, str) and preset not in PRESETS:
        problems.append(f"unknown preset {preset!r}{did_you_mean(preset, PRESETS)}; presets: {', '.join(PRESETS)}")
    for text in faults:
        try:
            fault = parse_fault(text)
        except ValueError as err:
            problems.append(str(err))
            continue
        if (problem := check_fault(*fault)) is not None or (problem := _reach(preset, fault)) is not None:
            problems.append(problem)
        parsed.append(fault)
    try:
        check_speed(speed)
    except ValueError as err:
        problems.append(str(err))
    if station_file is not None:
        target = Path(station_file)
        if target.is_dir() or not target.parent.is_dir():
            problems.append(f"--write-station {station_file}: "
                            f"{'is a directory' if target.is_dir() else 'no such directory'}")
    return parsed, problems


def _reach(preset, fault: Fault) -> str | None:
    """Why ``fault`` cannot affect the served pack (a preset's name or a pack definition), or None:
    armed anyway, it would change nothing and a client would test a golden pack unknowingly."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            return None  # reported as an unknown preset
        name, spec = preset, PRESETS[preset]
    else:
        name, spec = preset.name, preset.spec
    problem = fault_reach(*fault, spec)
    return None if problem is None else f"{problem} (pack {name})"


def endpoint_lines(endpoints: dict[str, str], can_address: str, fixture: str = FIXTURE) -> list[str]:
    """One line per endpoint: name, address, station resource (columns split by spaces)."""
    def tcpip(key: str) -> str:
        host, port = endpoints[key].rsplit(":", 1)
        return f"{endpoints[key]}  TCPIP::{host}::{port}::SOCKET"

    host, port = can_address.rsplit(":", 1)
    rows = [
        ("cycler-scpi", tcpip(f"{fixture}.cycler")),
        ("cycler-modbus", f"{endpoints[f'{fixture}.cycler_modbus']}  modbus-tcp://{endpoints[f'{fixture}.cycler_modbus']}?unit=1"),
        ("dmm-scpi", tcpip(f"{fixture}.dmm")),
        ("safety-scpi", tcpip("safety")),
        ("fixture-modbus", f"{endpoints[f'{fixture}.fixture']}  modbus-tcp://{endpoints[f'{fixture}.fixture']}?unit=1"),
        ("leak-serial", f"socket://{endpoints[f'{fixture}.leak']}"),
        ("bms-can", f"socketcand {can_address} channel {CAN_NAME}  "
                    f"can://socketcand/{CAN_NAME}?host={host}&port={port}&tcp_tune=true"),
    ]
    return [f"{name:<15} {rest}" for name, rest in rows]


async def serve(preset: str, faults: list[Fault], *, speed: float = 1.0, out: TextIO | None = None,
                err: TextIO | None = None, stop: asyncio.Event | None = None,
                station_file: str | Path | None = None) -> int:
    """Serve the bench in the running loop until ``stop`` is set or SIGINT/SIGTERM/SIGHUP arrives."""
    from sim.bench import SimBench
    from sim.socketcand_hub import SocketcandHub

    out, err = out or sys.stdout, err or sys.stderr
    stop = stop or asyncio.Event()
    bench, hub = SimBench({FIXTURE: preset}), None
    handled = _on_signals(stop)  # before the endpoints appear: a client may signal at once
    code = EXIT_OK
    try:
        try:
            endpoints = await bench.start()
            fx = bench.fixtures[FIXTURE]
            fx.wiring.lv_power = station_file is None
            arm_faults(bench, FIXTURE, faults)
            hub = SocketcandHub({CAN_NAME: fx.bms.channel})
            can_address = await hub.start()
        except (OSError, ValueError) as exc:
            print(f"station sim serve: cannot start the bench: {exc}", file=err)
            code = EXIT_ERROR
        else:
            if station_file is not None:
                target = Path(station_file)
                name = getattr(preset, "name", preset)  # a preset's name, or a loaded pack definition's
                text = station_yaml(endpoints, can_address, fixture=FIXTURE, preset=name, speed=speed,
                                    can_channel=CAN_NAME, uds_ids=UDS_IDS, db=f"{target.stem}.db")
                try:
                    write_atomically(target, text)
                except OSError as exc:
                    print(f"station sim serve: cannot write the station config {target}: {exc}", file=err)
                    return EXIT_ERROR  # the finally blocks stop every peer
            for line in endpoint_lines(endpoints, can_address):
                print(line, file=out)
            out.flush()
            names = ", ".join(name for name, _ in faults) or "none"
            lv = ("LV power ON (fixture coil lv_power) so the BMS is awake" if station_file is None
                  else "LV power off until the station switches it on (fixture coil lv_power)")
            print(f"# pack {preset} on fixture {FIXTURE}; {lv}; UDS 0x{UDS_IDS[0]:X}/0x{UDS_IDS[1]:X}; faults: {names}; speed {speed:g}x; "
                  "Ctrl-C, SIGTERM or SIGHUP stops"
                  + (f"; station config: {station_file}" if station_file is not None else ""), file=err, flush=True)
            await stop.wait()
        finally:
            if hub is not None:
                await hub.stop()
            try:
                await bench.stop()
            except RuntimeError as exc:  # a peer that would not stop: say which, exit non-zero
                print(f"station sim serve: {exc}", file=err)
                code = EXIT_ERROR
    finally:
        # Only now: a second Ctrl-C while the peers stop must not interrupt their shutdown.
        loop = asyncio.get_running_loop()
        for sig in handled:
            loop.remove_signal_handler(sig)
    return code


def _on_signals(stop: asyncio.Event) -> list[int]:
    """Set ``stop`` on SIGINT/SIGTERM/SIGHUP (a closed terminal stops the bench cleanly too);
    the signals actually hooked (none off the main thread)."""
    loop, hooked = asyncio.get_running_loop(), []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, _stop_on, stop, sig)
            hooked.append(sig)
    return hooked


def _stop_on(stop: asyncio.Event, sig: int) -> None:
    if not stop.is_set():
        print(f"station sim serve: {signal.Signals(sig).name}: stopping the bench", file=sys.stderr, flush=True)
    stop.set()


def serve_command(preset: str, faults: list[str], speed: float, pack: str | None = None,
                  station_file: str | None = None) -> int:
    """``station sim serve [--preset P | --pack FILE] [--fault F]... [--speed X] [--write-station FILE]``;
    the process exit code."""
    if pack is not None:  # a pack definition file instead of a shipped pack
        from drivers.base.diagnostics import InputError

        try:
            preset = load_pack(pack)  # type: ignore[assignment]
        except InputError as err:
            print(err, file=sys.stderr)
            return EXIT_USAGE
    parsed, problems = check_arguments(preset, faults, speed, station_file)
    if problems:
        for problem in problems:
            print(f"station sim serve: {problem}", file=sys.stderr)
        return EXIT_USAGE
    with asyncio.Runner(loop_factory=loop_factory(speed)) as runner:
        return runner.run(serve(preset, parsed, speed=speed, station_file=station_file))
