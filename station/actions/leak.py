"""Leak tester actions."""

from __future__ import annotations

from station.actions.registry import ActionSet, Arg

ACTIONS = ActionSet()


@ACTIONS.action("leak.test", args={"timeout": Arg(unit="s", default=180.0)},
        measures={"pressure": "Pa", "status": "str"}, timeout=300, defaults={"status": {"equals": "OK"}})
async def test(ctx, timeout: float) -> dict:
    """Run one pressure-decay cycle on the coolant circuit."""
    result = await ctx.instrument("leak").test(timeout)
    return {"pressure": result.pressure, "status": result.status}
