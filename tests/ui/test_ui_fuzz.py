"""Random scans and keys typed into a running UI (--sim): no crash, no lost run. Every pack that
started has a finished record with a verdict, and the station still runs a pack afterwards."""

from __future__ import annotations

import asyncio
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from textual import events

from station.config import load_config
from station.ui.app import OperatorApp
from station.ui.dialogs import ConfirmAbort, PromptDialog
from station.ui.fixture_panel import FixturePanel
from station.ui.record_screen import RecordScreen
from tests.ui.conftest import write_station
from tests.ui.helpers import finished, panel, store_runs

KEYS = ["enter", "enter", "escape", "tab", "backspace", "f1", "f2", "f3", "f6", "f7", "ctrl+x", "y", "n", "up",
        "down", "ctrl+p", "ctrl+c", "home", "delete", "space", "GS"]
SERIALS = st.one_of(
    st.from_regex(r"(CAR|PRM|BUS|SN)[0-9A-Z]{1,6}", fullmatch=True),
    st.sampled_from(["[/]", "[@click=app.quit]", "[bold", "CAR0004CAR0004", "CAR" + "9" * 80, "\x1b[2J", "ok\x1dGS"]),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12),
)
START = st.tuples(st.sampled_from(["f1", "f2"]), st.from_regex(r"(CAR|PRM|BUS)[0-9]{3,5}", fullmatch=True))
ACTIONS = st.lists(st.one_of(st.tuples(st.just("scan"), SERIALS), st.tuples(st.just("key"), st.sampled_from(KEYS)),
                             st.tuples(st.just("start"), START)),
                   max_size=25)


async def type_text(pilot, app, text: str) -> None:
    for char in text:
        if char == "\x11":  # Ctrl+Q: quitting an idle station is what that key is for
            continue
        if char == "\x1d":
            app.post_message(events.Key("ctrl+right_square_bracket", "\x1d"))
        elif ord(char) < 0x20 or char == "\x7f":
            app.post_message(events.Key(f"ctrl+{chr(ord(char) + 0x60)}" if ord(char) < 0x20 else "delete", char))
        else:
            await pilot.press(char)


async def settle(pilot, app, timeout: float = 60.0) -> None:
    """Answer prompts, keep runs going, until no fixture runs and no dialog is open."""
    deadline = time.monotonic() + timeout
    while True:
        running = [p for p in app.main_screen.query(FixturePanel) if p.running]
        screen = app.screen
        if isinstance(screen, ConfirmAbort):
            screen.dismiss(False)
        elif isinstance(screen, PromptDialog):
            screen.dismiss("yes" if screen.request.style == "confirm" else "ok" if screen.request.style == "message"
                           else "42")
        elif isinstance(screen, RecordScreen):
            app.pop_screen()
        elif not running:
            return
        assert time.monotonic() < deadline, "the UI did not settle"
        await pilot.pause(0.05)


async def scenario(station, actions) -> None:
    config = load_config(station)
    db = config.resolve_path(config.config.results.db)
    before = len(store_runs(config)) if db.exists() else 0
    started: list[str] = []
    original = FixturePanel.begin

    def counting_begin(self, resolved):
        started.append(resolved.req.serial)
        return original(self, resolved)

    FixturePanel.begin = counting_begin  # observe every start; the run itself is untouched
    try:
        app = OperatorApp(config, sim=True)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await pilot.press(*"op1", "enter")
            await pilot.pause()
            for kind, value in actions:
                if app.main_screen is None or app.screen.__class__.__name__ == "LoginScreen":
                    await pilot.press(*"op1", "enter")
                    await pilot.pause()
                if kind == "scan":
                    await type_text(pilot, app, value)
                    await pilot.press("enter")
                elif kind == "start":  # a fixture key, a good scan, Enter to see it, Enter to start
                    await pilot.press(value[0])
                    await pilot.pause()
                    await type_text(pilot, app, value[1])
                    await pilot.press("enter", "enter")
                elif value == "GS":
                    app.post_message(events.Key("ctrl+right_square_bracket", "\x1d"))
                else:
                    await pilot.press(value)
                await pilot.pause()
                assert app.is_running and app._exception is None
            await settle(pilot, app)
            # the station still works: a clean pack on F1 from the start
            await pilot.press("f1")
            await pilot.pause()
            f1 = panel(app, "F1")
            f1.serial_input.value = ""
            await type_text(pilot, app, "PRM9999")
            await pilot.press("enter")
            await pilot.pause()
            assert f1.pending is not None, f1.query_one(".info").render()
            await pilot.press("enter")
            await settle(pilot, app)
            assert finished(app, "F1")() and f1.state.serial == "PRM9999" and f1.state.verdict == "PASS"
            assert app._exception is None
    finally:
        FixturePanel.begin = original
    runs = store_runs(config)[: len(store_runs(config)) - before]
    assert sorted(r["serial"] for r in runs) == sorted(started)  # no run lost, none invented
    assert all(r["status"] == "finished" and r["verdict"] in ("PASS", "FAIL", "ERROR", "ABORTED") for r in runs)


@pytest.mark.timeout(900)  # ~10 s an example on a quiet machine; several times that under load
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(actions=ACTIONS)
def test_random_scans_and_keys_neither_crash_nor_lose_a_run(tmp_path_factory, actions):
    station = write_station(tmp_path_factory.mktemp("fuzz"))
    asyncio.run(scenario(station, actions))
