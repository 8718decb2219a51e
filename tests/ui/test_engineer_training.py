"""Training mode: an engineer injects a simulator fault on one fixture; the plan catches it as FAIL;
the verdict says what failed in plain words and where the pack goes; the history marks the run
and leaves it out of first-pass yield; its record and HTML report open from the history."""

from __future__ import annotations

from station.ui.app import OperatorApp
from station.ui.record_screen import RecordScreen
from station.ui.screens import LoginScreen
from tests.ui.helpers import finished, login, panel, scan, shown, store_runs, until


async def test_engineer_fault_gives_fail_with_measurement(station_config):
    app = OperatorApp(station_config, sim=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await login(pilot, "eng1")
        await pilot.press("f8")
        await pilot.pause()
        assert "isolation_low" in shown(app.main_screen.query_one("#fault-names"))
        app.main_screen.query_one("#train-faults-F1").focus()
        await pilot.press(*"isolation_low", "enter")
        await pilot.pause()
        f1, f2 = panel(app, "F1"), panel(app, "F2")
        # the fault is chosen for F1 only: F1 wears the badge, F2 does not, and F2's run gets no fault
        assert f1.query_one(".fault-badge").display and "isolation_low" in shown(f1.query_one(".fault-badge"))
        assert not f2.query_one(".fault-badge").display
        assert app.overrides("F2").faults == () and app.overrides("F1").faults == ("isolation_low",)
        await scan(pilot, app, "F1", "CAR001")
        assert "fault isolation_low" in shown(f1.query_one(".info"))
        await pilot.press("enter")
        await until(pilot, finished(app, "F1"), what="the verdict")
        assert f1.state.verdict == "FAIL"
        verdict = f1.query_one(".verdict")
        banner = shown(verdict)
        assert verdict.word == "FAIL" and "█" in banner  # block letters fit a 40-column fixture column
        assert "iso_plus resistance was" in banner and "it must be at least 20 MΩ" in banner
        assert "→ red bin HV, call the test engineer" in banner  # the catalogue's disposition for isolation
        assert not f1.query_one(".steps-scroll").display  # the verdict has the whole column

        # history: marked as a fault run, not counted in first-pass yield; Enter opens the record
        await pilot.press("f7")
        history = app.main_screen.query_one("#history")
        await until(pilot, lambda: history.row_count == 1, what="the history")
        row = [str(c) for c in history.get_row_at(0)]
        assert row[1] == "CAR001" and row[3] == "FAULT isolation_low"
        summary = shown(app.main_screen.query_one("#history-summary"))
        assert "first-pass yield —" in summary and "1 training/fault runs not counted" in summary
        history.focus()
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RecordScreen) and app.screen.record is not None,
                    what="the record screen")
        body = shown(app.screen.query_one("#record-body"))
        assert "FAULTS INJECTED: isolation_low" in body and "iso_plus" in body and "safe state:" in body
        await pilot.press("r")
        await pilot.pause()
        report = app.screen.report_path
        assert report is not None and report.is_file() and "<html" in report.read_text()[:200].lower()
        assert str(report) in shown(app.screen.query_one("#record-note"))
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.main_screen

        await pilot.press("f5")  # log out: the next operator starts at the log-in screen
        await pilot.pause()
        assert isinstance(app.screen, LoginScreen) and app.operator is None
    run = store_runs(station_config)[0]
    assert run["verdict"] == "FAIL" and run["operator"] == "eng1" and run["faults"] == ["isolation_low"]
