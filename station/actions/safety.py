"""Electrical-safety actions: ground bond, insulation resistance, withstand (hipot).

The pole or bonding point is selected by the fixture's relay matrix before the tester runs and
released afterwards, whatever happened; the tester may be shared by several fixtures (the
engine serialises it).
"""

from __future__ import annotations

from station.actions.preconditions import require_imd_disabled
from station.actions.registry import ActionSet, Arg
from station.engine.errors import StepError

POLE_RELAY = {"HV+": "ir_hv_plus", "HV-": "ir_hv_minus"}

ACTIONS = ActionSet()


@ACTIONS.action("safety.ground_bond",
        args={"point": Arg(kind="str"), "index": Arg(kind="int", default=None, doc="1-based probe position"),
              "points": Arg(kind="list", default=None, doc="all point names in fixture probe order (the position of 'point' selects the probe)"),
              "current": Arg(unit="A", default=25.0), "dwell": Arg(unit="s", default=5.0),
              "high_limit": Arg(unit="ohm", default=0.1)},
        measures={"resistance": "ohm"}, timeout=120, one_of_args=(("index", "points"),),
        safe_state="drives current through a bonding point: the point is deselected when it ends, and by the safe state")
async def ground_bond(ctx, point: str, index: int | None, points: list | None, current: float, dwell: float,
                      high_limit: float) -> dict:
    """4-wire bond resistance from a bonding point to the chassis reference."""
    if index is None:  # the probe position comes from the step's own arguments, never a parameter's name
        if points is None:
            raise StepError("safety.ground_bond needs 'points' (every point in probe order) or 'index'")
        if point not in points:
            raise StepError(f"bonding point {point!r} is not in 'points' {list(points)}; give 'index'")
        index = list(points).index(point) + 1
    fixture = ctx.instrument("fixture") if ctx.has_instrument("fixture") else None
    if fixture is not None and hasattr(fixture, "select_bond_point"):
        await fixture.select_bond_point(index)
    try:
        result = await ctx.instrument("safety").ground_bond(current, dwell, high_limit)
    finally:
        if fixture is not None and hasattr(fixture, "select_bond_point"):
            await fixture.select_bond_point(0)
    return {"resistance": result.resistance}


@ACTIONS.action("safety.insulation",
        args={"pole": Arg(kind="str", choices=("HV+", "HV-")), "voltage": Arg(unit="V"),
              "dwell": Arg(unit="s", default=10.0), "ramp": Arg(unit="s", default=1.0),
              "low_limit": Arg(unit="ohm", default=1e6)},
        measures={"resistance": "ohm"}, timeout=180, hv=True, preconditions=("insulation_monitor_disabled",),
        safe_state="applies test voltage to a pole: its IR relay opens when it ends, and the safe state stops the tester and opens the IR relays")
async def insulation(ctx, pole: str, voltage: float, dwell: float, ramp: float, low_limit: float) -> dict:
    """Insulation resistance of one HV pole to chassis, read at the end of the dwell."""
    require_imd_disabled(ctx, "safety.insulation")
    relay = POLE_RELAY[pole]
    fixture = ctx.instrument("fixture")
    await fixture.set_output(relay, True)
    try:
        result = await ctx.instrument("safety").insulation(voltage, dwell, low_limit, ramp)
    finally:
        await fixture.set_output(relay, False)
    if result.samples:
        ctx.series("insulation", ["t_s", "resistance_ohm"], [list(s) for s in result.samples])
    return {"resistance": result.resistance}


@ACTIONS.action("safety.withstand",
        args={"pole": Arg(kind="str", choices=("HV+", "HV-")), "mode": Arg(kind="str", choices=("AC", "DC"), default="DC"),
              "voltage": Arg(unit="V"), "dwell": Arg(unit="s", default=1.0), "ramp": Arg(unit="s", default=1.0),
              "leakage_limit": Arg(unit="A", default=0.01)},
        measures={"leakage": "A", "arc": "bool"}, timeout=180, hv=True, defaults={"arc": {"equals": False}},
        preconditions=("insulation_monitor_disabled",),
        safe_state="applies withstand voltage: the safe state stops the tester and opens the IR relays")
async def withstand(ctx, pole: str, mode: str, voltage: float, dwell: float, ramp: float, leakage_limit: float) -> dict:
    """Dielectric withstand (hipot) of one pole to chassis: leakage current and arc detection."""
    require_imd_disabled(ctx, "safety.withstand")
    relay = POLE_RELAY[pole]
    fixture = ctx.instrument("fixture")
    await fixture.set_output(relay, True)
    try:
        result = await ctx.instrument("safety").withstand(mode, voltage, dwell, leakage_limit, ramp)
    finally:
        await fixture.set_output(relay, False)
    return {"leakage": result.leakage, "arc": result.arc}
