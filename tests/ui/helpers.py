"""Pilot helpers: wait for a condition with a real-time deadline, read what a widget shows."""

from __future__ import annotations

import time

from station.ui.fixture_panel import FixturePanel


async def until(pilot, condition, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def panel(app, fixture: str) -> FixturePanel:
    return app.main_screen.query_one(f"#fx-{fixture}", FixturePanel)


def shown(widget) -> str:
    """The plain text a Static/Label currently renders."""
    return str(widget.render())


async def login(pilot, operator: str) -> None:
    await pilot.pause()
    await pilot.press(*operator, "enter")
    await pilot.pause()


async def scan(pilot, app, fixture: str, serial: str) -> None:
    """Focus the fixture's serial field, type the serial, Enter (plan/variant shown)."""
    p = panel(app, fixture)
    p.serial_input.value = ""
    p.serial_input.focus()
    await pilot.pause()
    await pilot.press(*serial, "enter")
    await pilot.pause()


def finished(app, fixture: str):
    return lambda: (p := panel(app, fixture)).state.verdict is not None and not p.running


def store_runs(config) -> list[dict]:
    """Runs in the station's result store, newest first (read-only)."""
    from station.results.store import ResultStore

    with ResultStore(config.resolve_path(config.config.results.db), readonly=True) as store:
        return store.runs()
