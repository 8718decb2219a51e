"""BMS actions: wake, live values, contactors and precharge, HVIL, cells, UDS identity and EOL data."""

from __future__ import annotations

import datetime as dt
import functools

from station.actions.registry import ActionSet, Arg, Effect
from station.engine.errors import StepError

SOC_PERCENT = 100.0  # the BMS reports SOC in %; plans judge fractions written as '30 %'


@functools.lru_cache(maxsize=1)
def _did_table():
    from drivers.bms.did_table import load_did_table

    return load_did_table()


def _entry(did, bms=None):
    """The DID table entry of ``did`` (name or number), in the BMS's own table where it has one."""
    table = bms.did_table() if hasattr(bms, "did_table") else _did_table()
    try:
        return table.resolve(int(did, 16) if isinstance(did, str) and did.lower().startswith("0x") else did)
    except (KeyError, ValueError, LookupError) as err:
        raise StepError(f"unknown DID {did!r}: {err}") from None


ACTIONS = ActionSet()


@ACTIONS.action("bms.wake", args={"within": Arg(unit="s", default=5.0)}, measures={"wake_time": "s"}, timeout=60)
async def wake(ctx, within: float) -> dict:
    """Wait until every cyclic BMS message is on the bus."""
    return {"wake_time": await ctx.instrument("bms").wake(within)}


@ACTIONS.action("bms.pack", measures={"voltage": "V", "current": "A", "soc": "%"}, timeout=10)
async def pack(ctx) -> dict:
    """Pack voltage, current and (where the BMS offers it) state of charge as the BMS reports them."""
    bms = ctx.instrument("bms")
    out = {"voltage": bms.signal("pack_voltage"), "current": bms.signal("pack_current")}
    if _offers_signal(bms, "soc"):
        out["soc"] = bms.signal("soc") / SOC_PERCENT
    else:
        ctx.log("the BMS does not offer soc: not measured")
    return out


def _offers_signal(bms, name: str) -> bool:
    """Whether ``bms`` maps ``name`` (a driver that cannot say is taken to offer it)."""
    offers = getattr(bms, "offers", None)
    return True if offers is None else name in offers()["signals"]


@ACTIONS.action("bms.signal", args={"name": Arg(kind="str")}, measures={"value": ""}, positional="name", timeout=10)
async def signal(ctx, name: str) -> dict:
    """Any mapped BMS signal by its logical name."""
    return {"value": ctx.instrument("bms").signal(name)}


async def _await_signal(ctx, name: str, want: float, within: float) -> float | None:
    bms = ctx.instrument("bms")
    start = ctx.now()
    while ctx.now() - start <= within:
        if bms.signal(name) == want:
            return ctx.now() - start
        await ctx.sleep(0.05)
    return None


@ACTIONS.action("bms.insulation_monitor", args={"state": Arg(kind="str", choices=("enable", "disable")),
                                        "within": Arg(unit="s", default=2.0)},
        measures={"imd_enabled": "bool"}, positional="state", timeout=30,
        effects={"state": {"disable": Effect(establishes=("insulation_monitor_disabled",)),
                           "enable": Effect(breaks=("insulation_monitor_disabled",))}},
        safe_state="switches the BMS insulation monitor: the safe state enables it again")
async def insulation_monitor(ctx, state: str, within: float) -> dict:
    """Enable/disable the pack's insulation monitor and wait for the BMS to confirm it."""
    enabled = state == "enable"
    await ctx.instrument("bms").set_insulation_monitor(enabled)
    if await _await_signal(ctx, "imd_enabled", 1.0 if enabled else 0.0, within) is None:
        raise StepError(f"BMS did not confirm insulation monitor {state} within {within:g} s")
    return {"imd_enabled": enabled}


@ACTIONS.action("bms.mode", args={"mode": Arg(kind="str", choices=("standby", "normal", "charge", "discharge")),
                          "within": Arg(unit="s", default=5.0)},
        measures={"state": "str", "time": "s"}, positional="mode", timeout=60,
        effects={"mode": {"standby": Effect(breaks=("dc_bus_connected",)),
                          **{m: Effect(establishes=("dc_bus_connected",)) for m in ("normal", "charge", "discharge")}}},
        safe_state="the safe state requests BMS standby (contactors open)")
async def mode(ctx, mode: str, within: float) -> dict:
    """Request a BMS mode and wait for the state to follow."""
    bms = ctx.instrument("bms")
    await bms.request_mode(mode)
    start = ctx.now()
    while ctx.now() - start < within and bms.state() != mode:
        await ctx.sleep(0.05)
    return {"state": bms.state(), "time": ctx.now() - start}


PRECHARGE_DONE = 0.95  # of the pack voltage: where the main contactor may close (≈ 3 time constants)


@ACTIONS.action("bms.close_contactors", args={"within": Arg(unit="s", default=5.0), "sample": Arg(unit="s", default=0.01)},
        measures={"precharge_time": "s", "feedback_time": "s", "bus_ratio": "", "feedback_ok": "bool"},
        timeout=60, hv=True, defaults={"feedback_ok": {"equals": True}},
        establishes=("dc_bus_connected",), safe_state="closes the main contactors: the safe state opens them (BMS standby)")
async def close_contactors(ctx, within: float, sample: float) -> dict:
    """Close the contactors through precharge; time it and record the bus-voltage curve (DMM).

    ``precharge_time``: s from the mode request until the bus reaches 95 % of the pack voltage,
    interpolated between the samples of the curve (the DMM's, else the BMS's bus voltage).
    ``feedback_time``: s until the BMS reports the main contactor closed; its report comes in a
    cyclic frame, up to one cycle (100 ms here) after the fact, so it is not the precharge time
    (on the reference pack: 180 ms to 95 %, reported at 190-290 ms against a 300 ms limit).
    ``bus_ratio``: bus ÷ pack voltage when that report came.
    ``feedback_ok``: within ``within`` s the BMS reported both main contactors closed and the
    precharge contactor open. Sampling goes on until it does: the mode and the contactor states
    may come in different frames, and a precharge contactor releases some ms after the mode
    turns normal (its release time), so a report of "normal" alone does not settle it.
    """
    bms = ctx.instrument("bms")
    dmm = ctx.instrument("dmm") if ctx.has_instrument("dmm") else None
    pack_v = bms.signal("pack_voltage")
    threshold = PRECHARGE_DONE * pack_v
    await bms.request_mode("normal")
    start = ctx.now()
    rows, ratio, closed_at, reached = [], float("nan"), None, None
    while ctx.now() - start < within:
        asked = ctx.now() - start
        bus = await dmm.measure_dc_voltage(1000.0, 0.02) if dmm else bms.signal("bus_voltage")
        # A reading is of a moment between the command and the reply, not of the command: against
        # a bench at 40x one DMM round trip is 0.1-0.3 s of station time (its wall latency x 40).
        t = (asked + ctx.now() - start) / 2
        if reached is None and pack_v > 0 and bus >= threshold:
            reached = _crossing(rows[-1] if rows else None, t, bus, threshold)
        rows.append([t, bus])
        if bms.signal("contactor_main_plus") >= 1 and closed_at is None:
            closed_at, ratio = t, bus / pack_v if pack_v else float("nan")
        if bms.state() == "normal" and reached is not None and _closed_feedback(bms):
            break
        await ctx.sleep(sample)
    ctx.series("precharge", ["t_s", "bus_voltage_V"], rows)
    feedback = _closed_feedback(bms)
    nan = float("nan")
    return {"precharge_time": nan if reached is None else reached, "feedback_time": nan if closed_at is None else closed_at,
            "bus_ratio": ratio, "feedback_ok": bool(feedback)}


def _closed_feedback(bms) -> bool:
    """The BMS reports both main contactors closed and the precharge contactor open."""
    return (bms.signal("contactor_main_plus") >= 1 and bms.signal("contactor_main_minus") >= 1
            and bms.signal("contactor_precharge") < 1)


def _crossing(before: list[float] | None, t: float, volts: float, threshold: float) -> float:
    """s at which the bus crossed ``threshold`` between the sample ``before`` ([t, V]) and (t, volts)."""
    if before is None or volts <= before[1]:
        return t
    t0, v0 = before
    return t0 + (t - t0) * (threshold - v0) / (volts - v0) if threshold > v0 else t0


@ACTIONS.action("bms.open_contactors", args={"within": Arg(unit="s", default=5.0), "settle": Arg(unit="s", default=2.0)},
        measures={"open_time": "s", "feedback_open": "bool", "bus_voltage": "V", "welded": "bool"}, timeout=60,
        defaults={"feedback_open": {"equals": True}, "welded": {"equals": False}},
        breaks=("dc_bus_connected",))
async def open_contactors(ctx, within: float, settle: float) -> dict:
    """Open the contactors; weld check: feedback open and the bus falls once the pack is cut off."""
    bms = ctx.instrument("bms")
    await bms.request_mode("standby")
    start = ctx.now()
    while ctx.now() - start < within and bms.signal("contactor_main_plus") >= 1:
        await ctx.sleep(0.05)
    open_time = ctx.now() - start
    feedback_open = bms.signal("contactor_main_plus") < 1 and bms.signal("contactor_main_minus") < 1
    await ctx.sleep(settle)
    dmm = ctx.instrument("dmm") if ctx.has_instrument("dmm") else None
    bus = await dmm.measure_dc_voltage(1000.0, 1.0) if dmm else bms.signal("bus_voltage")
    welded = bus > 0.8 * bms.signal("pack_voltage")  # a weld holds the bus at pack voltage; the bleed takes it down
    return {"open_time": open_time, "feedback_open": bool(feedback_open), "bus_voltage": bus, "welded": bool(welded)}


@ACTIONS.action("bms.hvil_check", args={"within": Arg(unit="s", default=2.0)},
        measures={"detected_open": "bool", "detect_time": "s", "restored": "bool"}, timeout=30,
        defaults={"detected_open": {"equals": True}, "restored": {"equals": True}},
        breaks=("dc_bus_connected",))  # an open HVIL loop makes the BMS open its contactors: that is its purpose
async def hvil_check(ctx, within: float) -> dict:
    """Open the HVIL loop at the fixture; the BMS must see it open, then closed again."""
    fixture = ctx.instrument("fixture")
    await fixture.set_output("hvil_break", True)
    try:
        seen = await _await_signal(ctx, "hvil_closed", 0.0, within)
    finally:
        await fixture.set_output("hvil_break", False)
    restored = await _await_signal(ctx, "hvil_closed", 1.0, within)
    return {"detected_open": seen is not None, "detect_time": seen if seen is not None else float("nan"),
            "restored": restored is not None}


@ACTIONS.action("bms.cells", args={"settle": Arg(unit="s", default=1.0)},
        measures={"count": "", "v_min": "V", "v_max": "V", "v_spread": "V", "v_sum": "V", "sum_vs_pack": "V",
                  "t_count": "", "t_min": "degC", "t_max": "degC", "t_spread": "degC"}, timeout=30)
async def cells(ctx, settle: float) -> dict:
    """All cell voltages and temperatures: count, range, spread, and sum of cells vs pack voltage."""
    bms = ctx.instrument("bms")
    await ctx.sleep(settle)  # one full sweep of the multiplexed frames
    volts = bms.cell_voltages()
    temps = bms.cell_temperatures()
    if not volts or not temps:
        raise StepError("the BMS reported no cell voltages or temperatures")
    ctx.series("cell_voltages", ["cell", "voltage_V"], [[i + 1, v] for i, v in enumerate(volts)])
    total = sum(volts)
    return {"count": len(volts), "v_min": min(volts), "v_max": max(volts), "v_spread": max(volts) - min(volts),
            "v_sum": total, "sum_vs_pack": abs(total - bms.signal("pack_voltage")), "t_count": len(temps),
            "t_min": min(temps), "t_max": max(temps), "t_spread": max(temps) - min(temps)}


@ACTIONS.action("bms.balancing", args={"on": Arg(kind="bool"), "within": Arg(unit="s", default=3.0)},
        measures={"active": "bool"}, positional="on", timeout=60,
        safe_state="the safe state stops cell balancing")
async def balancing(ctx, on: bool, within: float) -> dict:
    """Command balancing on/off; report whether the BMS flags follow."""
    await ctx.instrument("bms").set_balancing(on)
    seen = await _await_signal(ctx, "balancing_active", 1.0 if on else 0.0, within)
    return {"active": on if seen is not None else (not on)}


@ACTIONS.action("bms.identity", args={"dids": Arg(kind="list", default=["ecu_serial", "supplier_sw_version", "sw_version",
                                                                    "hw_version", "part_number"])},
        measures={"*": "str"}, timeout=60)
async def identity(ctx, dids: list) -> dict:
    """Read identity DIDs over UDS (extended session); measurement names are the DID names."""
    bms = ctx.instrument("bms")
    out = {}
    for did in dids:
        entry = _entry(did, bms)
        out[entry.name] = str(entry.decode(await bms.uds_read(entry.did)))
    return out


@ACTIONS.action("bms.dtcs", args={"mask": Arg(kind="int", default=0x09)}, measures={"count": "", "codes": "str"}, timeout=60)
async def dtcs(ctx, mask: int) -> dict:
    """Stored DTCs matching a status mask (default: test failed / confirmed)."""
    bms = ctx.instrument("bms")
    found = await bms.read_dtcs(mask)
    texts = getattr(bms.did_table(), "dtcs", {}) if hasattr(bms, "did_table") else {}
    for d in found:  # the diagnostic description (ODX) names them: the record says what each is
        if d.code in texts:
            ctx.log(f"DTC {d.code:06X} (status {d.status:02X}): {texts[d.code]}")
    return {"count": len(found), "codes": " ".join(f"{d.code:06X}:{d.status:02X}" for d in found)}


@ACTIONS.action("bms.clear_dtcs", timeout=60)
async def clear_dtcs(ctx) -> dict:
    """Clear all DTCs (0x14 FFFFFF)."""
    await ctx.instrument("bms").clear_dtcs()
    return {}


@ACTIONS.action("bms.reset", args={"settle": Arg(unit="s", default=1.0)}, timeout=60)
async def reset(ctx, settle: float) -> dict:
    """ECU hard reset (0x11 01), then let it come back."""
    await ctx.instrument("bms").ecu_reset()
    await ctx.sleep(settle)
    return {}


@ACTIONS.action("bms.unlock", args={"level": Arg(kind="int", default=1)}, timeout=60)
async def unlock(ctx, level: int) -> dict:
    """Security access (0x27 seed/key) at ``level``."""
    await ctx.instrument("bms").uds_unlock(level)
    return {}


@ACTIONS.action("bms.write_did", args={"did": Arg(kind="any"), "value": Arg(kind="any")}, timeout=60,
        safe_state="writes the BMS non-volatile memory: not undone by the safe state")
async def write_did(ctx, did, value) -> dict:
    """Write a DID (by name or number) with a value in its codec's form ('today' for dates)."""
    entry = _entry(did, ctx.instrument("bms"))
    if value == "today":
        value = dt.date.today()
    try:
        data = entry.encode(value)
    except (ValueError, TypeError) as err:
        raise StepError(f"DID {entry.name}: cannot encode {value!r}: {err}") from None
    await ctx.instrument("bms").uds_write(entry.did, data)
    return {}


@ACTIONS.action("bms.read_did", args={"did": Arg(kind="any")}, measures={"value": "str"}, positional="did", timeout=60)
async def read_did(ctx, did) -> dict:
    """Read a DID (by name or number), decoded per the DID table."""
    entry = _entry(did, ctx.instrument("bms"))
    value = entry.decode(await ctx.instrument("bms").uds_read(entry.did))
    return {"value": value.isoformat() if isinstance(value, dt.date) else str(value)}


@ACTIONS.action("bms.session", args={"kind": Arg(kind="str", choices=("default", "extended", "programming"))},
        positional="kind", timeout=30)
async def session(ctx, kind: str) -> dict:
    """UDS diagnostic session (writes need 'extended'); tester present is kept alive meanwhile."""
    await ctx.instrument("bms").uds_session(kind)
    return {}
