"""Fixture PLC actions: interlock inputs, clamp, LV power, HVIL break."""

from __future__ import annotations

from station.actions.registry import ActionSet, Arg, Effect
from station.engine.errors import StepError

INPUTS = ("estop_released", "guard_closed", "pack_present", "clamp_closed")

ACTIONS = ActionSet()


@ACTIONS.action("fixture.require", args={"inputs": Arg(kind="list", doc=f"inputs that must be true: {', '.join(INPUTS)}")},
        measures={"*": "bool"}, positional="inputs", defaults={"*": {"equals": True}}, timeout=10)
async def require(ctx, inputs: list) -> dict:
    """Read the fixture's inputs; each named one must be true."""
    unknown = [name for name in inputs if name not in INPUTS]
    if unknown:
        raise StepError(f"unknown fixture input(s) {unknown}; inputs: {', '.join(INPUTS)}")
    state = await ctx.instrument("fixture").read_inputs()
    return {name: bool(state.get(name, False)) for name in inputs}


@ACTIONS.action("fixture.clamp", args={"on": Arg(kind="bool"), "within": Arg(unit="s", default=5.0)},
        measures={"clamp_closed": "bool", "time": "s"}, positional="on", timeout=30,
        defaults={"clamp_closed": {"equals": True}},
        safe_state="moves the pack clamps: not changed by the safe state")
async def clamp(ctx, on: bool, within: float) -> dict:
    """Close (or open) the clamp and wait for its feedback."""
    fixture = ctx.instrument("fixture")
    await fixture.set_output("clamp", bool(on))
    start = ctx.now()
    while True:
        closed = (await fixture.read_inputs()).get("clamp_closed", False)
        if closed == bool(on) or ctx.now() - start >= within:
            return {"clamp_closed": closed if on else not closed, "time": ctx.now() - start}
        await ctx.sleep(0.1)


@ACTIONS.action("fixture.lv_power", args={"on": Arg(kind="bool")}, positional="on", timeout=10,
        effects={"on": {False: Effect(breaks=("dc_bus_connected",))}},  # an unpowered BMS cannot hold them closed
        safe_state="switches the pack's LV supply: not changed by the safe state (the BMS stays readable)")
async def lv_power(ctx, on: bool) -> dict:
    """Switch the pack's 12/24 V supply (wakes the BMS)."""
    await ctx.instrument("fixture").set_output("lv_power", bool(on))
    return {}


@ACTIONS.action("fixture.output", args={"name": Arg(kind="str"), "on": Arg(kind="bool")}, timeout=10,
        safe_state="sets a fixture output: the safe state opens the IR relays and the HVIL break (others stay as set)")
async def output(ctx, name: str, on: bool) -> dict:
    """Set any named fixture output."""
    await ctx.instrument("fixture").set_output(name, bool(on))
    return {}
