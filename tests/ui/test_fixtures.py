"""Two fixtures in one session at once; the station panel refuses a pack while an instrument is
past calibration."""

from __future__ import annotations

from ruamel.yaml import YAML

from station.config import load_config
from station.ui.app import OperatorApp
from station.ui.dialogs import PromptDialog
from tests.ui.conftest import write_station
from tests.ui.helpers import finished, login, panel, scan, shown, store_runs, until

SIZE = (80, 24)


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

        def prompts() -> list[PromptDialog]:
            return [s for s in app.screen_stack if isinstance(s, PromptDialog)]

        await until(pilot, lambda: len(prompts()) == 2, what="both fixtures' prompts")
        assert f1.running and f2.running  # two packs under test at the same time, one session
        assert {d.fixture for d in prompts()} == {"F1", "F2"}
        await pilot.press("y")
        await pilot.pause()
        await pilot.press("y")
        await until(pilot, lambda: finished(app, "F1")() and finished(app, "F2")(), what="both verdicts")
        assert (f1.state.verdict, f2.state.verdict) == ("PASS", "PASS"), (f1.state.reason, f1.state.errors, str(f1.state.render_steps()), f2.state.reason)
        v1 = next(m.value for m in f1.state.steps["main/pack_v"].measurements if m.name == "voltage")
        v2 = next(m.value for m in f2.state.steps["main/pack_v"].measurements if m.name == "voltage")
        assert v1 < 450 < v2  # F1 holds the car pack, F2 the bus pack
    runs = {r["serial"]: r for r in store_runs(station_config)}
    assert runs["PRM020"]["verdict"] == "PASS" and runs["PRM010"]["verdict"] == "PASS"


async def test_station_panel_and_calibration_refusal(tmp_path):
    path = write_station(tmp_path)
    yaml = YAML()
    data = yaml.load(path.read_text())
    data["fixtures"]["F1"]["instruments"]["dmm"]["calibration_due"] = "2020-01-31"
    with path.open("w") as fh:
        yaml.dump(data, fh)
    config = load_config(path)
    app = OperatorApp(config, sim=True)
    async with app.run_test(size=SIZE) as pilot:
        await login(pilot, "op1")
        table = app.main_screen.query_one("#instruments")
        await until(pilot, lambda: table.row_count == 12, what="the station panel")
        states = {str(table.get_row_at(i)[2]) for i in range(table.row_count)}
        assert states == {"simulated"}
        assert "F1.dmm" in shown(app.main_screen.query_one("#station-summary"))
        await pilot.press("f6")  # the station tab renders (and takes the focus from the run tab)
        await pilot.pause()
        assert app.main_screen.query_one("#tabs").active == "tab-station" and app.focused is table
        await pilot.press("f7")
        await pilot.pause()
        assert "first-pass yield —" in shown(app.main_screen.query_one("#history-summary"))
        await pilot.press("f1")
        await scan(pilot, app, "F1", "CAR002")
        await pilot.press("enter")
        f1 = panel(app, "F1")
        await until(pilot, lambda: "cannot start" in shown(f1.query_one(".info")), what="the refusal")
        assert "dmm" in shown(f1.query_one(".info")) and "2020-01-31" in shown(f1.query_one(".info"))
        assert not f1.running
    assert store_runs(config) == []
