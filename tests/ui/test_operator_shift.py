"""An operator's shift on the simulated station at 80x24, driven by Textual's Pilot: log in,
refusals (unreleased plan, wrong fixture), scan + prompt + PASS, then abort the next pack."""

from __future__ import annotations

from station.ui.app import OperatorApp
from station.ui.dialogs import ConfirmAbort, PromptDialog
from tests.ui.helpers import finished, login, panel, scan, shown, store_runs, until

SIZE = (80, 24)


async def test_operator_shift(station_config):
    app = OperatorApp(station_config, sim=True)
    async with app.run_test(size=SIZE) as pilot:
        await login(pilot, "nobody")
        assert "unknown operator id 'nobody'" in shown(app.screen.query_one("#login-error"))
        await pilot.press(*"op1", "enter")
        await pilot.pause()
        assert app.operator is not None and app.operator.role == "operator"
        assert not app.main_screen.query("#tab-training")  # operators get no plan picker
        f1 = panel(app, "F1")

        # an operator cannot run a plan that is not released for this station
        await scan(pilot, app, "F1", "UNR001")
        assert "draft.yaml is not released for station EOL-SIM-01" in shown(f1.query_one(".info"))
        await pilot.press("enter")
        await pilot.pause()
        assert not f1.running and f1.pending is None
        # a bus pack scanned on the car fixture is refused before anything is touched
        await scan(pilot, app, "F1", "BUS001")
        assert "fixture F1 holds a simulated car-400 pack" in shown(f1.query_one(".info"))
        assert store_runs(station_config) == []

        # scan, see plan + variant, Enter starts; the prompt is answered; PASS
        await scan(pilot, app, "F1", "PRM001")
        assert "prompt-check 0.1.0" in shown(f1.query_one(".info")) and not f1.running
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PromptDialog), what="the prompt dialog")
        assert "Is the pack label readable?" in shown(app.screen.query_one(".dialog-message"))
        assert str(app.screen.query_one("#yes").label) == "Yes [y]"  # the key hint is shown, not eaten as markup
        await pilot.press("y")
        await until(pilot, finished(app, "F1"), what="the verdict")
        assert f1.state.verdict == "PASS", (f1.state.reason, str(f1.state.render_steps()))
        banner = shown(f1.query_one(".verdict"))
        assert f1.query_one(".verdict").word == "PASS" and f1.state.run_id[:12] in banner
        assert app.focused is f1.serial_input and f1.serial_input.value == ""  # next scan is ready
        assert any(m.name == "confirmed" and m.value is True for m in f1.state.steps["main/label_ok"].measurements)
        first_id = f1.state.run_id

        # the next pack: abort while the run waits at its prompt; the safe state is shown
        await pilot.press(*"PRM002", "enter")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PromptDialog), what="the second prompt")
        await pilot.press("ctrl+x")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmAbort)
        await pilot.press("y")
        await until(pilot, finished(app, "F1"), what="the ABORTED verdict")
        assert not isinstance(app.screen, (PromptDialog, ConfirmAbort))  # the prompt was taken down
        assert f1.state.verdict == "ABORTED" and "operator abort" in (f1.state.reason or "")
        assert f1.state.safe and all(a.ok for a in f1.state.safe)
        assert "safe state:" in str(f1.state.render_steps())
        assert f1.query_one(".verdict").word == "ABORTED" and not f1.serial_input.disabled
        assert "retest the pack" in shown(f1.query_one(".verdict"))

        # history: both packs, first-pass yield of the shift
        history = app.main_screen.query_one("#history")
        await until(pilot, lambda: history.row_count == 2, what="the history")
        assert "first-pass yield 50%" in shown(app.main_screen.query_one("#history-summary"))
    runs = store_runs(station_config)
    assert [(r["serial"], r["verdict"]) for r in runs] == [("PRM002", "ABORTED"), ("PRM001", "PASS")]
    assert runs[1]["id"] == first_id and runs[1]["operator"] == "op1"
