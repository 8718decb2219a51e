"""Training mode: an engineer injects a simulator fault; the plan catches it as FAIL."""

from __future__ import annotations

from station.ui.app import OperatorApp
from station.ui.screens import LoginScreen
from tests.ui.helpers import finished, login, panel, scan, shown, store_runs, until


async def test_engineer_fault_gives_fail_with_measurement(station_config):
    app = OperatorApp(station_config, sim=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await login(pilot, "eng1")
        await pilot.press("f4")
        await pilot.pause()
        assert "isolation_low" in shown(app.main_screen.query_one("#fault-names"))
        app.main_screen.query_one("#train-faults").focus()
        await pilot.press(*"isolation_low", "enter")
        await scan(pilot, app, "F1", "CAR001")
        f1 = panel(app, "F1")
        assert "fault isolation_low" in shown(f1.query_one(".info"))
        await pilot.press("enter")
        await until(pilot, finished(app, "F1"), what="the verdict")
        assert f1.state.verdict == "FAIL"
        banner = shown(f1.query_one(".verdict"))
        assert "FAIL" in banner and "iso_plus resistance" in banner and "20 MOhm" in banner
        await pilot.press("f5")  # log out: the next operator starts at the log-in screen
        await pilot.pause()
        assert isinstance(app.screen, LoginScreen) and app.operator is None
    run = store_runs(station_config)[0]
    assert run["verdict"] == "FAIL" and run["operator"] == "eng1"
