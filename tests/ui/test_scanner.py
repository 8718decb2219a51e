"""A barcode wedge on the operator UI: each scan replaces the last, the catalogue's rules refuse
in words, control characters stay visible, keys typed where no field takes them are routed to the
selected fixture or refused on screen; F-keys select fixtures; no command palette."""

from __future__ import annotations

import re

from textual import events

from station.ui.app import OperatorApp
from station.ui.dialogs import PromptDialog
from tests.ui.helpers import finished, login, panel, shown, store_runs, until

SIZE = (80, 24)


def info(app, fixture: str) -> str:
    return shown(panel(app, fixture).query_one(".info"))


def toasts(app) -> str:
    return "\n".join(str(n.message) for n in app._notifications)


async def wedge(pilot, app, text: str) -> None:
    """What a keyboard-wedge scanner sends: one key per character (GS as Ctrl+]), then Enter."""
    for char in text:
        if char == "\x1d":
            app.post_message(events.Key("ctrl+right_square_bracket", "\x1d"))
        elif char == "\x1b":
            await pilot.press("escape")
        else:
            await pilot.press(char)
    await pilot.press("enter")
    await pilot.pause()


async def test_each_scan_replaces_the_last_and_bad_scans_are_refused_in_words(station_config):
    app = OperatorApp(station_config, sim=True)
    async with app.run_test(size=SIZE) as pilot:
        await login(pilot, "op1")
        f1 = panel(app, "F1")
        assert app.focused is f1.serial_input
        await wedge(pilot, app, "CAR0004")
        assert info(app, "F1").startswith("CAR0004: smoke 1.0.0 · car-400 — Enter to start")
        await wedge(pilot, app, "CAR0005")  # the second scan is not appended to the first
        assert f1.serial_input.value == "CAR0005" and f1.pending.req.serial == "CAR0005"
        assert info(app, "F1").startswith("CAR0005: smoke")

        await wedge(pilot, app, "CAR" + "7" * 57)
        assert info(app, "F1") == ("✘ the scan has 60 characters; a car-pack serial has at most 20 "
                                   "(two scans run together?): scan again")
        assert f1.pending is None
        await wedge(pilot, app, "CAR0006#")  # the scanner's suffix is stripped
        assert f1.pending.req.serial == "CAR0006"
        await wedge(pilot, app, "0104012345678901" + "21CAR77" + "\x1d" + "10LOT1")  # a GS1 label
        assert "␝" in f1.serial_input.value and f1.pending.req.serial == "CAR77"
        await wedge(pilot, app, "(01)04099999999999(21)CAR78")
        assert "GTIN (01) 04099999999999 is not the car-pack GTIN" in info(app, "F1")
        await wedge(pilot, app, "CAR1\x1b2")  # a mis-set scanner's ESC is not dropped silently
        assert "␛" in f1.serial_input.value and "control character ESC" in info(app, "F1")
        await wedge(pilot, app, "CAR12ab")
        assert "contains 'a' 'b'; a car-pack serial holds only the characters A-Z0-9" in info(app, "F1")

        # editing keys keep the scan: backspace then a character corrects it instead of replacing it
        await wedge(pilot, app, "CAR0011")
        await pilot.press("backspace", "2", "enter")
        await pilot.pause()
        assert f1.serial_input.value == "CAR0012" and f1.pending.req.serial == "CAR0012"
    assert store_runs(station_config) == []  # nothing was started by any of it


async def test_stray_keys_are_routed_or_refused_and_f_keys_select_fixtures(station_config):
    app = OperatorApp(station_config, sim=True)
    async with app.run_test(size=SIZE) as pilot:
        await login(pilot, "op1")
        tabs = app.main_screen.query_one("#tabs")
        f1, f2 = panel(app, "F1"), panel(app, "F2")
        # F2 is fixture F2 (not a tab), from any tab
        await pilot.press("f7")
        await pilot.pause()
        assert tabs.active == "tab-history"
        await pilot.press("f2")
        await pilot.pause()
        assert tabs.active == "tab-run" and app.focused is f2.serial_input and app.selected == "F2"
        assert f2.has_class("selected") and not f1.has_class("selected")
        await pilot.press("f1")
        await pilot.pause()
        assert app.focused is f1.serial_input and app.selected == "F1"

        # a scan while the history table has the focus goes to the selected fixture's field
        await pilot.press("f7")
        await pilot.pause()
        app.main_screen.query_one("#history").focus()
        await pilot.pause()
        await wedge(pilot, app, "PRM0001")
        assert tabs.active == "tab-run" and app.focused is f1.serial_input
        assert f1.serial_input.value == "PRM0001" and info(app, "F1").startswith("PRM0001: prompt-check")

        # a scan while a dialog is open is refused on screen, and its Enter presses no button
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PromptDialog), what="the prompt dialog")
        await wedge(pilot, app, "CAR0009")
        assert isinstance(app.screen, PromptDialog)  # not answered by the scan's Enter
        assert "NOT taken: answer the dialog first" in toasts(app)
        # every character is reported (in one toast, or more when the machine paused between keys)
        assert "".join(re.findall(r"keys '([^']*)' NOT taken", toasts(app))) == "CAR0009"
        # a slow scan: reported after its pause, and the Enter that follows still presses nothing
        await pilot.press(*"CAR1")
        await pilot.pause(1.5)
        assert "keys 'CAR1' NOT taken" in toasts(app)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, PromptDialog)
        await pilot.press("y")
        await until(pilot, finished(app, "F1"), what="the verdict")
        assert f1.state.verdict == "PASS"

        # no command palette, no developer keys
        assert not app.ENABLE_COMMAND_PALETTE
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert app.screen is app.main_screen
        await pilot.press("ctrl+c")
        await pilot.pause()
        assert app.is_running and "Ctrl+C does nothing here" in toasts(app)
    assert [r["serial"] for r in store_runs(station_config)] == ["PRM0001"]


async def test_clock_ticks_through_a_long_wait_with_takt_and_live_values_grey_at_the_end(station_config):
    app = OperatorApp(station_config, sim=True)
    async with app.run_test(size=SIZE) as pilot:
        await login(pilot, "op1")
        f1 = panel(app, "F1")
        await wedge(pilot, app, "PRM0002")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PromptDialog), what="the prompt dialog")
        clock = f1.query_one(".clock")

        def elapsed() -> float:
            return float(re.match(r"\s*(\d+) s", shown(clock)).group(1))

        await until(pilot, lambda: "takt 30 s" in shown(clock), what="the takt on the clock")
        t_event, first = f1.state.t, elapsed()
        await pilot.pause(2.5)  # no event arrives while the run waits for the operator
        assert f1.state.t == t_event and elapsed() >= first + 2  # the clock ticked anyway
        await pilot.press("y")
        await until(pilot, finished(app, "F1"), what="the verdict")
        live = f1.query_one(".live")
        assert live.has_class("ended")  # greyed: no longer live
        assert not shown(live) or shown(live).startswith("at end: ")
        assert "left" not in shown(clock)
