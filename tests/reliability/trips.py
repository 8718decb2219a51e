"""Reaction-time harness: trip a running HV step in a chosen way and time the way to safety.

One ``Session`` on the simulated bench runs the one-HV-step plan again and again; each run is
tripped once at a random moment of the HV step. Latency = from the moment the signal changed
(as defined per kind below) to the last ``SafeStateAction`` of an HV source (safety tester,
cycler), both on the loop's clock; the BMS's request to open its contactors goes out at that
moment (its ``safe_state()`` starts right after the cycler's). The BMS's own confirmation (the
first state frame after the request reporting the contactors open, up to one frame cycle
later) is recorded apart (``bms_t``). The simulated cycler's own output-off moment is recorded
too (``output_off``), seen from inside the simulator.

Signal change, per kind:
- ``estop`` / ``guard``: the fixture input changes (``Wiring``), as the hard-wired switch does;
- ``hvil``: the first BMS frame that reports the loop open (the HVIL relay opened up to one
  frame period earlier: ``phys_to_frame`` reports that part, which is the BMS's, not ours);
- ``monitor``: the first BMS frame that carries a cell voltage above the monitor's limit;
- ``bms_silent``: the moment the last frame's value turns stale (last frame + 3 cycles);
- ``cycler_wdt``: the cycler's control-watchdog deadline (last command + watchdog time).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from pathlib import Path

from station.events import SafeStateAction, StepStarted
from station.runner import RunRequest, Session, prepare

HV_ROLES = {"safety", "cycler"}
HV_STEP = "main/hv/charge"
EXCURSION_V = 4.5  # V reported for cell_voltage_max by a tripped BMS (monitor max 4.2 V)


@dataclasses.dataclass
class Trip:
    kind: str
    verdict: str
    reason: str | None
    signal_t: float | None  # loop time of the signal change
    safe_t: float | None  # loop time of the last HV-source SafeStateAction
    output_off_t: float | None  # loop time the simulated cycler's output went off
    phys_t: float | None = None  # loop time of the physical change (hvil, bms_silent)
    bms_t: float | None = None  # loop time of the BMS's last SafeStateAction (its confirmation)
    timeline: list[tuple[float, str]] = dataclasses.field(default_factory=list)  # (loop t, what)

    @property
    def latency(self) -> float | None:
        if self.signal_t is None or self.safe_t is None:
            return None
        return self.safe_t - self.signal_t


class _Probe:
    """Instruments the simulated bench for one fixture: records when signals change."""

    def __init__(self, fx) -> None:
        self.fx = fx
        self.reset()
        loop = asyncio.get_running_loop()
        bms, measure = fx.bms, fx.bms.measure
        cvmax_id = bms.map.signals["cell_voltage_max"].message.frame_id
        hvil_id = bms.map.signals["hvil_closed"].message.frame_id
        sample = measure.sample

        def sample_and_trip(*args):
            # a tripped BMS measures a cell above the monitor's limit: every frame built from
            # this measurement cycle on reports it (the cell V min/max frame carries the max)
            sample(*args)
            if self.excursion:
                low, low_at, _high, high_at = measure.extremes_of["cell_voltage"]
                measure.extremes_of = {**measure.extremes_of, "cell_voltage": (low, low_at, EXCURSION_V, high_at)}

        measure.sample = sample_and_trip  # instance attribute: the simulator's senders call it
        bus = bms._bus
        send = bus.send

        def send_and_watch(msg, *args, **kw):
            send(msg, *args, **kw)
            now = loop.time()
            if msg.arbitration_id == cvmax_id:
                self.last_cvmax_t = now  # a frame carrying cell_voltage_max was sent
                if (self.excursion and self.signal_t is None
                        and measure.extremes_of["cell_voltage"][2] == EXCURSION_V):
                    self.signal_t = now
            if (msg.arbitration_id == hvil_id and self.kind == "hvil" and self.signal_t is None
                    and not bms.pack.hvil_closed()):
                self.signal_t = now  # the frame reporting the loop open

        bus.send = send_and_watch  # instance attribute: the BMS sends every frame through it
        cycler = fx.cycler
        apply = type(cycler)._apply

        def apply_and_watch():
            was_on = self.cycler_on
            apply(cycler)
            self.cycler_on = cycler.output
            if was_on and not cycler.output and self.output_off_t is None:
                self.output_off_t = loop.time()
                if self.kind == "cycler_wdt" and "WDT" in cycler.trips:
                    # the watchdog's deadline: the last command it saw + its timeout
                    self.signal_t = cycler._last_activity + cycler.watchdog_s

        cycler._apply = apply_and_watch

    def reset(self, kind: str = "") -> None:
        self.kind = kind
        self.excursion = False
        self.signal_t: float | None = None
        self.phys_t: float | None = None
        self.output_off_t: float | None = None
        self.cycler_on = False
        self.last_cvmax_t: float | None = None

    def restore(self) -> None:
        """Undo the last trip on the bench (``Session.run`` then rolls in a fresh pack)."""
        fx = self.fx
        fx.wiring.estop_pressed = fx.wiring.guard_open = False
        fx.pack.set_hvil_break(False)
        fx.bms.silent_after(float("inf"))

    def fire(self) -> None:
        loop = asyncio.get_running_loop()
        fx, now = self.fx, loop.time()
        self.phys_t = now
        if self.kind == "estop":
            fx.wiring.estop_pressed = True
            self.signal_t = now
        elif self.kind == "guard":
            fx.wiring.guard_open = True
            self.signal_t = now
        elif self.kind == "hvil":
            fx.pack.set_hvil_break(True)
        elif self.kind == "monitor":
            self.excursion = True
        elif self.kind == "bms_silent":
            fx.bms.silent_after(now)
        else:
            raise ValueError(self.kind)


async def run_trips(config, plan: Path, db: Path, kinds: list[str], rng: random.Random, *,
                    window: tuple[float, float] = (0.2, 2.0)) -> list[Trip]:
    """Run the plan once per entry of ``kinds``; trip each run ``window`` s into the HV step."""
    req = RunRequest(plan=str(plan), sim=True, serial="SN0001", db=str(db))
    prep = dataclasses.replace(prepare(req), config=config)
    trips: list[Trip] = []
    async with Session(config, sim=True, db=str(db)) as session:
        loop = asyncio.get_running_loop()
        probe = _Probe(session.bench.fixtures[prep.fixture])
        for kind in kinds:
            # Between packs: let the previous run's BMS values age out. The driver keeps live
            # values across runs, so a run started within 3 frame cycles of the last one would
            # judge the old pack's last frames (bms.wake returns at once; see the report).
            probe.reset(kind)
            probe.restore()
            await asyncio.sleep(0.5)
            safe: list[float] = []
            bms: list[float] = []
            seqs = []
            timeline: list[tuple[float, str]] = []

            def on_event(event, safe=safe, bms=bms, seqs=seqs, timeline=timeline, kind=kind):
                if isinstance(event, StepStarted) and event.path == HV_STEP and kind in _FIRED:
                    loop.call_later(rng.uniform(*window), probe.fire)
                elif isinstance(event, SafeStateAction) and event.instrument in HV_ROLES:
                    safe.append(seqs[0].events.t0 + event.t)
                elif isinstance(event, SafeStateAction) and event.instrument == "bms":
                    bms.append(seqs[0].events.t0 + event.t)
                if probe.phys_t is not None:
                    timeline.append((seqs[0].events.t0 + event.t, type(event).__name__ + " " + getattr(event, "instrument", "")))

            verdict, _run_id, record = await session.run(req, prep, subscribers=[on_event],
                                                         on_sequencer=seqs.append, signals=False)
            signal_t = probe.signal_t
            if kind == "bms_silent":
                signal_t = _stale_at(probe.last_cvmax_t)
            trips.append(Trip(kind, verdict, record["reason"], signal_t, max(safe) if safe else None,
                              probe.output_off_t, probe.phys_t, timeline=timeline, bms_t=max(bms) if bms else None))
    return trips


_FIRED = {"estop", "guard", "hvil", "monitor", "bms_silent"}


def _stale_at(last_frame_t: float | None) -> float | None:
    """When cell_voltage_max turned stale for the driver: its last frame + 3 cycle times."""
    from drivers.bms.live_values import STALE_CYCLES

    period = 0.1  # s: EOL_CellVoltageMinMax GenMsgCycleTime in drivers/maps/eol_bms.dbc
    return None if last_frame_t is None else last_frame_t + STALE_CYCLES * period
