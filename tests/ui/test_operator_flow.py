"""The operator terminal on the simulated station, driven by Textual's Pilot at 80x24."""

from __future__ import annotations

from ruamel.yaml import YAML

from station.config import load_config
from station.results.store import ResultStore
from station.ui.app import OperatorApp
from station.ui.dialogs import ConfirmAbort, PromptDialog
from tests.ui.conftest import write_station
from tests.ui.helpers import finished, login, panel, scan, shown, until

SIZE = (80, 24)


def store_runs(config):
    with ResultStore(config.resolve_path(config.config.results.db), readonly=True) as store:
        return store.runs()


async def test_login_scan_prompt_pass(station_config):
    app = OperatorApp(station_config, sim=True)
    async with app.run_test(size=SIZE) as pilot:
        await login(pilot, "nobody")
        assert "unknown operator id 'nobody'" in shown(app.screen.query_one("#login-error"))
        await pilot.press(*"op1", "enter")
        await pilot.pause()
        assert app.operator is not None and app.operator.role == "operator"
        assert not app.screen.query("#tab-training")  # operators get no plan picker
        await scan(pilot, app, "F1", "PRM001")
        f1 = panel(app, "F1")
        assert "prompt-check 0.1.0" in shown(f1.query_one(".info")) and not f1.running
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PromptDialog), what="the prompt dialog")
        assert "Is the pack label readable?" in shown(app.screen.query_one(".dialog-message"))
        await pilot.press("y")
        await until(pilot, finished(app, "F1"), what="the verdict")
        assert f1.state.verdict == "PASS", (f1.state.reason, str(f1.state.render_steps()))
        banner = shown(f1.query_one(".verdict"))
        assert "PASS" in banner and f1.state.run_id in banner
        assert app.focused is f1.serial_input and f1.serial_input.value == ""
        assert any(m.name == "confirmed" and m.value is True for m in f1.state.steps["main/label_ok"].measurements)
    runs = store_runs(station_config)
    assert runs[0]["verdict"] == "PASS" and runs[0]["operator"] == "op1" and runs[0]["serial"] == "PRM001"


async def test_engineer_fault_gives_fail_with_measurement(station_config):
    app = OperatorApp(station_config, sim=True)
    async with app.run_test(size=SIZE) as pilot:
        await login(pilot, "eng1")
        await pilot.press("f4")
        await pilot.pause()
        app.screen.query_one("#train-faults").focus()
        await pilot.press(*"isolation_low", "enter")
        await scan(pilot, app, "F1", "CAR001")
        f1 = panel(app, "F1")
        assert "fault isolation_low" in shown(f1.query_one(".info"))
        await pilot.press("enter")
        await until(pilot, finished(app, "F1"), what="the verdict")
        assert f1.state.verdict == "FAIL"
        banner = shown(f1.query_one(".verdict"))
        assert "FAIL" in banner and "iso_plus resistance" in banner and "20 MOhm" in banner
    assert store_runs(station_config)[0]["verdict"] == "FAIL"


async def test_abort_mid_run_reaches_safe_state(station_config):
    app = OperatorApp(station_config, sim=True)
    async with app.run_test(size=SIZE) as pilot:
        await login(pilot, "op1")
        await scan(pilot, app, "F1", "PRM002")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PromptDialog), what="the prompt dialog")
        await pilot.press("ctrl+x")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmAbort)
        await pilot.press("y")
        f1 = panel(app, "F1")
        await until(pilot, finished(app, "F1"), what="the ABORTED verdict")
        assert not isinstance(app.screen, (PromptDialog, ConfirmAbort))  # the prompt was taken down
        assert f1.state.verdict == "ABORTED" and "operator abort" in (f1.state.reason or "")
        assert f1.state.safe and all(a.ok for a in f1.state.safe)
        assert "safe state:" in str(f1.state.render_steps())
        assert not f1.serial_input.disabled
    run = store_runs(station_config)[0]
    assert run["verdict"] == "ABORTED"


async def test_operator_cannot_run_unreleased_plan(station_config):
    app = OperatorApp(station_config, sim=True)
    async with app.run_test(size=SIZE) as pilot:
        await login(pilot, "op1")
        await scan(pilot, app, "F1", "UNR001")
        f1 = panel(app, "F1")
        text = shown(f1.query_one(".info"))
        assert "draft.yaml is not released for station EOL-SIM-01" in text
        await pilot.press("enter")
        await pilot.pause()
        assert not f1.running and f1.state.verdict is None
        await scan(pilot, app, "F1", "BUS001")  # a bus pack on the car fixture
        assert "fixture F1 holds a simulated car-400 pack" in shown(f1.query_one(".info"))
    assert store_runs(station_config) == []


async def test_two_fixtures_run_at_once(station_config):
    app = OperatorApp(station_config, sim=True)
    async with app.run_test(size=SIZE) as pilot:
        await login(pilot, "op1")
        f1, f2 = panel(app, "F1"), panel(app, "F2")
        await scan(pilot, app, "F2", "PRM020")
        await scan(pilot, app, "F1", "PRM010")
        assert f1.pending is not None and f2.pending is not None
        f2.begin(f2.pending)  # what Enter on F2 does; done here so F2 cannot finish before F1 starts
        await pilot.press("enter")  # F1's field has the focus
        prompts = lambda: [s for s in app.screen_stack if isinstance(s, PromptDialog)]
        await until(pilot, lambda: len(prompts()) == 2, what="both fixtures' prompts")
        assert f1.running and f2.running  # two packs under test at the same time, one session
        assert {d.fixture for d in prompts()} == {"F1", "F2"}
        await pilot.press("y")
        await pilot.pause()
        await pilot.press("y")
        await until(pilot, lambda: finished(app, "F1")() and finished(app, "F2")(), what="both verdicts")
        assert (f1.state.verdict, f2.state.verdict) == ("PASS", "PASS")
        v1 = next(m.value for m in f1.state.steps["main/pack_v"].measurements if m.name == "voltage")
        v2 = next(m.value for m in f2.state.steps["main/pack_v"].measurements if m.name == "voltage")
        assert v1 < 450 < v2  # F1 holds the car pack, F2 the bus pack
        history = app.main_screen.query_one("#history")
        await until(pilot, lambda: history.row_count == 2, what="the history")
    runs = {r["serial"]: r for r in store_runs(station_config)}
    assert runs["PRM020"]["verdict"] == "PASS" and runs["PRM010"]["verdict"] == "PASS"


async def test_station_panel_and_calibration_refusal(tmp_path):
    path = write_station(tmp_path)
    yaml = YAML()
    data = yaml.load(path.read_text())
    data["fixtures"]["F1"]["instruments"]["dmm"]["calibration_due"] = "2020-01-31"
    with path.open("w") as fh:
        yaml.dump(data, fh)
    app = OperatorApp(load_config(path), sim=True)
    async with app.run_test(size=SIZE) as pilot:
        await login(pilot, "op1")
        table = app.main_screen.query_one("#instruments")
        await until(pilot, lambda: table.row_count >= 11, what="the station panel")  # 6 + 6, safety shared
        states = {str(table.get_row_at(i)[2]) for i in range(table.row_count)}
        assert states == {"simulated"}
        assert "F1.dmm" in shown(app.screen.query_one("#station-summary"))
        await scan(pilot, app, "F1", "CAR002")
        await pilot.press("enter")
        f1 = panel(app, "F1")
        await until(pilot, lambda: "cannot start" in shown(f1.query_one(".info")), what="the refusal")
        assert "dmm" in shown(f1.query_one(".info")) and "2020-01-31" in shown(f1.query_one(".info"))
        assert not f1.running
    assert store_runs(load_config(path)) == []
