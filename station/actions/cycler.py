"""Cycler actions: output, DC internal resistance pulse, charge/discharge to a shipping SOC.

Charge quantities in plans are in Ah; in the engine they are SI (A*s = C): 1 Ah = 3600 C.
Long actions poll the cycler at least every ``poll`` s, which also feeds its control watchdog.
"""

from __future__ import annotations

from station.actions.preconditions import require_dc_bus, require_physical
from station.actions.registry import Arg, action
from station.engine.errors import StepError

AH = 3600.0  # C per Ah


@action("cycler.output", args={"on": Arg(kind="bool")}, positional="on", timeout=10,
        safe_state="switches the cycler output: the safe state zeroes the current and switches it off")
async def output(ctx, on: bool) -> dict:
    """Switch the cycler output (off also zeroes the current setpoint)."""
    cycler = ctx.instrument("cycler")
    if not on:
        await cycler.set_current(0.0)
    await cycler.set_output(bool(on))
    return {}


@action("cycler.measure", measures={"voltage": "V", "current": "A", "power": "W", "charge": "Ah"}, timeout=10)
async def measure(ctx) -> dict:
    """Terminal voltage, current, power and the Ah counter."""
    r = await ctx.instrument("cycler").measure()
    return {"voltage": r.voltage, "current": r.current, "power": r.power, "charge": r.ah * AH}


async def _sample(ctx, cycler, t0: float, rows: list) -> tuple[float, float]:
    r = await cycler.measure()
    rows.append([ctx.now() - t0, r.voltage, r.current])
    return r.voltage, r.current


# s: a target this close counts as reached. On virtual time a sleep shorter than the clock's
# float resolution (~1e-14 s at 60 s) does not move it: ``now`` stalled a few ulps short of
# ``at`` and the loop sampled for ever (a proof's car-800 run hung in cycler.dcir with t0 54.71 s).
REACHED = 1e-6


async def _hold(ctx, cycler, t0: float, until: float, at: float, every: float, rows: list,
                cells_at: list | None = None) -> float:
    """Sample until ``until`` (s since t0); return the voltage sampled at ``at`` (cells too, if asked)."""
    v_at = float("nan")
    taken = False
    while True:
        now = ctx.now() - t0
        if not taken and now >= at - REACHED:
            v_at, _ = await _sample(ctx, cycler, t0, rows)
            if cells_at is not None:
                cells_at.extend(ctx.instrument("bms").cell_voltages())
            taken = True
        elif now >= until - REACHED:
            return v_at
        else:
            await _sample(ctx, cycler, t0, rows)
        now = ctx.now() - t0
        nxt = min(until, at if not taken else until, now + every)
        await ctx.sleep(max(0.0, nxt - now))


@action("cycler.dcir",
        args={"current": Arg(unit="A", doc="discharge pulse magnitude"), "duration": Arg(unit="s", default=10.0),
              "regen_ratio": Arg(kind="number", default=0.75), "at": Arg(unit="s", default=10.0),
              "v_min": Arg(unit="V"), "v_max": Arg(unit="V"), "rest": Arg(unit="s", default=2.0),
              "every": Arg(unit="s", default=0.5)},
        measures={"r_discharge": "ohm", "r_regen": "ohm", "v_rest": "V", "cell_r_ratio": ""}, timeout=300, hv=True,
        preconditions=("dc_bus_connected",), safe_state="drives pulse current through the pack: the output is switched off when it ends, and by the safe state")
async def dcir(ctx, current: float, duration: float, regen_ratio: float, at: float, v_min: float, v_max: float,
               rest: float, every: float) -> dict:
    """Discharge pulse, rest, regen pulse at ``regen_ratio`` × current; R = ΔV/ΔI at ``at`` s into each.

    With a BMS, each cell's drop during the discharge pulse is compared with the median cell:
    ``cell_r_ratio`` = worst / median (a weak cell hides in the pack resistance, not here).
    """
    if not 0 < at <= duration:
        raise StepError(f"'at' ({at:g} s) must be within the pulse duration ({duration:g} s)")
    await require_dc_bus(ctx, "cycler.dcir")
    cycler = ctx.instrument("cycler")
    rows: list[list[float]] = []
    t0 = ctx.now()
    await cycler.set_current_limits(current * regen_ratio * 1.1, current * 1.1)
    await cycler.set_current(0.0)
    await cycler.set_output(True)
    try:
        v0, _ = await _sample(ctx, cycler, t0, rows)
        bms = ctx.instrument("bms") if ctx.has_instrument("bms") else None
        cells_rest = list(bms.cell_voltages()) if bms else []
        cells_load: list[float] = []
        await cycler.set_voltage(v_min)
        await cycler.set_current(-current)
        start = ctx.now() - t0
        v_dis = await _hold(ctx, cycler, t0, start + duration, start + at, every, rows,
                            cells_load if bms else None)
        await cycler.set_current(0.0)
        await ctx.sleep(rest)
        v1, _ = await _sample(ctx, cycler, t0, rows)
        await cycler.set_voltage(v_max)
        await cycler.set_current(current * regen_ratio)
        start = ctx.now() - t0
        v_reg = await _hold(ctx, cycler, t0, start + duration, start + at, every, rows)
        await cycler.set_current(0.0)
        await _sample(ctx, cycler, t0, rows)
    finally:
        await cycler.set_current(0.0)
        await cycler.set_output(False)
    ctx.series("dcir", ["t_s", "voltage_V", "current_A"], rows)
    result = {"r_discharge": (v0 - v_dis) / current, "r_regen": (v_reg - v1) / (current * regen_ratio), "v_rest": v0}
    for name in ("r_discharge", "r_regen"):  # a bus lost mid-pulse: an ERROR naming why, never a FAIL
        require_physical("dc_bus_connected", "cycler.dcir", name, result[name], "ohm")
    if cells_rest and len(cells_rest) == len(cells_load):
        drops = sorted(r - l for r, l in zip(cells_rest, cells_load))
        median = drops[len(drops) // 2]
        result["cell_r_ratio"] = drops[-1] / median if median > 0 else float("inf")
    return result


@action("cycler.charge_to_soc",
        args={"target": Arg(unit="%"), "current": Arg(unit="A"), "capacity": Arg(unit="Ah"),
              "v_max": Arg(unit="V"), "v_min": Arg(unit="V"), "poll": Arg(unit="s", default=2.0),
              "max_time": Arg(unit="s", default=7200.0)},
        measures={"soc": "%", "charge": "Ah", "soc_agreement": "%", "time": "s"}, timeout=10800, hv=True,
        preconditions=("dc_bus_connected",), safe_state="charges or discharges the pack: the output is switched off when it ends, and by the safe state")
async def charge_to_soc(ctx, target: float, current: float, capacity: float, v_max: float, v_min: float,
                        poll: float, max_time: float) -> dict:
    """Charge or discharge at ``current`` until the BMS SOC reaches ``target``; compare with the cycler's Ah."""
    await require_dc_bus(ctx, "cycler.charge_to_soc")
    cycler, bms = ctx.instrument("cycler"), ctx.instrument("bms")
    soc0 = bms.signal("soc") / 100.0
    direction = 1.0 if target > soc0 else -1.0
    await cycler.reset_counters()
    await cycler.set_current_limits(current * 1.05, current * 1.05)
    await cycler.set_voltage(v_max if direction > 0 else v_min)
    await cycler.set_current(direction * current)
    await cycler.set_output(True)
    t0 = ctx.now()
    rows: list[list[float]] = []
    try:
        while True:
            r, tripped = await cycler.measure_and_protection()
            if tripped:
                raise StepError(f"cycler protection tripped: {', '.join(sorted(tripped))}")
            soc = bms.signal("soc") / 100.0
            t = ctx.now() - t0
            if not rows or t - rows[-1][0] >= 10.0:
                rows.append([t, r.voltage, r.current, soc * 100.0])
            if (soc - target) * direction >= 0 or t >= max_time:
                break
            await ctx.sleep(poll)
    finally:
        await cycler.set_current(0.0)
        await cycler.set_output(False)
    r = await cycler.measure()
    soc = bms.signal("soc") / 100.0
    ctx.series("soc_adjust", ["t_s", "voltage_V", "current_A", "soc_pct"], rows)
    capacity_ah = capacity / AH
    agreement = abs((soc - soc0) - r.ah / capacity_ah)
    return {"soc": soc, "charge": r.ah * AH, "soc_agreement": agreement, "time": ctx.now() - t0}
