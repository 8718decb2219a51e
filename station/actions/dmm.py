"""DMM actions: pack/bus voltage and the independent < 60 V confirmation."""

from __future__ import annotations

from station.actions.registry import ActionSet, Arg

ACTIONS = ActionSet()


@ACTIONS.action("dmm.voltage", args={"range": Arg(unit="V", default=1000.0), "nplc": Arg(kind="number", default=10.0)},
        measures={"voltage": "V"}, timeout=30)
async def voltage(ctx, range: float, nplc: float) -> dict:
    """DC voltage at the HV connector."""
    return {"voltage": await ctx.instrument("dmm").measure_dc_voltage(range, nplc)}


@ACTIONS.action("dmm.expect_below", args={"voltage": Arg(unit="V"), "within": Arg(unit="s", default=30.0)},
        measures={"voltage": "V", "time": "s"}, timeout=120)
async def expect_below(ctx, voltage: float, within: float) -> dict:
    """Poll the bus voltage until it is below ``voltage`` or ``within`` has passed."""
    dmm = ctx.instrument("dmm")
    start = ctx.now()
    while True:
        volts = await dmm.measure_dc_voltage(1000.0, 1.0)
        if abs(volts) < voltage or ctx.now() - start >= within:
            return {"voltage": volts, "time": ctx.now() - start}
        await ctx.sleep(0.5)
