"""Station built-ins: waits, computed measurements, log lines and operator prompts."""

from __future__ import annotations

from station.actions.registry import ActionSet, Arg

ACTIONS = ActionSet()


@ACTIONS.action("station.wait", args={"duration": Arg(unit="s", doc="How long to wait")}, positional="duration")
async def wait(ctx, duration: float) -> dict:
    """Wait on the station clock."""
    await ctx.sleep(duration)
    return {}


@ACTIONS.action("station.calc", args={"*": Arg(kind="any", doc="name: '${expression}'")}, measures={"*": ""})
async def calc(ctx, **values) -> dict:
    """Computed measurements from parameters and earlier results, e.g. ``delta: '${abs(a.v - b.v)}'``."""
    return dict(values)


@ACTIONS.action("station.log", args={"message": Arg(kind="str")}, positional="message")
async def log(ctx, message: str) -> dict:
    """Write a line into the run's record."""
    ctx.log(str(message))
    return {}


@ACTIONS.action("operator.message", args={"message": Arg(kind="str"), "default": Arg(kind="str", default="ok")},
        positional="message")
async def message(ctx, message: str, default: str) -> dict:
    """Show a message; the run waits until the operator acknowledges it."""
    await ctx.prompt("message", message, default=default)
    return {}


@ACTIONS.action("operator.confirm", args={"message": Arg(kind="str"), "default": Arg(kind="str", default=None)},
        measures={"confirmed": "bool"}, positional="message", defaults={"confirmed": {"equals": True}})
async def confirm(ctx, message: str, default: str | None) -> dict:
    """Ask a yes/no question; ``confirmed`` must be true unless the plan says otherwise."""
    answer = await ctx.prompt("confirm", message, default=default)
    return {"confirmed": answer.strip().lower() in ("y", "yes", "true", "1", "ok")}


@ACTIONS.action("operator.input",
        args={"message": Arg(kind="str"), "pattern": Arg(kind="str", default=None), "default": Arg(kind="str", default=None)},
        measures={"value": "str"}, positional="message")
async def ask(ctx, message: str, pattern: str | None, default: str | None) -> dict:
    """Ask for typed input (validated against ``pattern`` by the UI and by ``expect``)."""
    return {"value": await ctx.prompt("input", message, pattern=pattern, default=default)}
