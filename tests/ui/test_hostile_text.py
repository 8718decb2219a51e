"""Text from outside is data on every screen: hostile serials, operator names, station ids, plan
file names, prompt texts, instrument replies, run events, stored records and toasts render as
they are (no MarkupError, no live ``[@click=…]`` action), and an unexpected UI error stops every
run safely before the app exits non-zero."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from ruamel.yaml import YAML

from station import events as ev
from station.config import load_config
from station.ui.app import OperatorApp
from station.ui.backend import InstrumentRow
from station.ui.dialogs import ConfirmAbort, PromptDialog
from station.ui.fixture_panel import RunEvent
from station.ui.panels import HistoryPanel
from station.ui.record_screen import RecordScreen, render_record
from station.ui.safe_text import shown as visible_text
from tests.ui.conftest import REPO, write_station
from tests.ui.helpers import login, panel, scan, shown, store_runs, until

HOSTILE = ["[/]", "x [/] y", "[@click=app.quit]quit[/]", "[bold", "[link=http://example.invalid]l[/link]",
           "\x1b[31mred\x1b[0m\x1b]0;title\x07", "A" * 500, "שלום\u202eabc\u0301e\u0308", "[b]", "$(rm)"]
SERIAL = "SN1[/][@click=app.quit]"  # no product claims it: accepted with the plan given explicitly


def hostile_station(tmp_path):
    path = write_station(tmp_path)
    yaml = YAML()
    data = yaml.load(path.read_text())
    data["station"] = {"id": "[@click=app.quit]ST[/]", "name": "[bold"}
    data["operators"] = [{"id": "op1", "name": "[/]Op [@click=app.quit]x", "role": "operator"},
                         {"id": "eng1", "name": "[bold eng", "role": "engineer"}]
    with path.open("w") as fh:
        yaml.dump(data, fh)
    (tmp_path / "plans" / "[@click=app.quit]x[b].yaml").write_text((tmp_path / "plans" / "smoke.yaml").read_text())
    return path


def event(cls, t=1.0, **kw):
    return cls(run_id="r[/]1", utc="2026-01-01T00:00:00+00:00", t=t, **kw)


async def test_every_screen_renders_hostile_text(tmp_path):
    station = hostile_station(tmp_path)
    # a stored run whose serial is markup (an older version accepted it): the history must show it
    proc = subprocess.run([sys.executable, "-m", "station.cli", "run", str(tmp_path / "plans" / "smoke.yaml"), "--sim",
                           "--station", str(station), "--serial", SERIAL, "--operator", "op1"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    config = load_config(station)
    app = OperatorApp(config, sim=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "[@click=app.quit]ST[/]" in shown(app.screen.query_one(".dialog-title"))
        for text in HOSTILE[:4]:  # the log-in error repeats what was typed
            app.screen.query_one("#login-id").value = text
            await pilot.press("enter")
            await pilot.pause()
            assert text in shown(app.screen.query_one("#login-error"))
        await login(pilot, "eng1")
        assert "[bold eng" in shown(app.main_screen.query_one("#topbar"))
        f1 = panel(app, "F1")

        # scans and the refusals that quote them
        for text in HOSTILE:
            await scan(pilot, app, "F1", text if "\x1b" not in text else "CAR1" + text)
            info = shown(f1.query_one(".info"))
            assert info.startswith("✘ "), info
        await scan(pilot, app, "F1", SERIAL)  # no product: refused (no plan chosen) and quoted as typed
        assert SERIAL[:20] in shown(f1.query_one(".info"))

        # events of a run: step names, measurement texts, errors, safe state, verdict reason
        for i, text in enumerate(HOSTILE):
            f1.post_message(RunEvent(event(ev.StepStarted, path=f"main/{text}", step_id=text, name=text,
                                           action="x", phase="main")))
            f1.post_message(RunEvent(event(ev.MeasurementTaken, path=f"main/{text}", name=text, value=text, unit=text,
                                           limits={"equals": text}, verdict="fail", text=text)))
            f1.post_message(RunEvent(event(ev.StepFinished, path=f"main/{text}", step_id=text, outcome="error",
                                           duration_s=1.0, error=text)))
            f1.post_message(RunEvent(event(ev.SafeStateAction, instrument=text, action=text, ok=i % 2 == 0, error=text)))
            f1.post_message(RunEvent(event(ev.LogMessage, level="error", message=text)))
            f1.post_message(RunEvent(event(ev.MonitorTripped, path=text, signal=text, value=1.0, limit=text)))
        f1.post_message(RunEvent(event(ev.RunFinished, t=2.0, verdict="FAIL", reason=HOSTILE[2], duration_s=2.0)))
        await until(pilot, lambda: f1.state.verdict == "FAIL", what="the hostile verdict")
        await pilot.pause(0.3)
        assert "[@click=app.quit]quit[/]" in shown(f1.query_one(".verdict"))
        assert "x [/] y" in str(f1.state.render_steps())
        assert "red␛[0m" in shown(f1.query_one(".steps")) and "\x1b" not in shown(f1.query_one(".steps"))

        # the station panel: instrument replies and start-up lines
        rows = [InstrumentRow("F1", text[:20], text, text, "error", identity=text, calibration_due=text, problem=text)
                for text in HOSTILE]
        app.show_instruments("F1", rows)
        app.show_startup("F1", HOSTILE)
        await pilot.press("f6")
        await pilot.pause(0.3)
        assert "[@click=app.quit]quit[/]" in shown(app.main_screen.query_one("#startup-report"))

        # training tab: a plan file whose name is markup
        await pilot.press("f8")
        await pilot.pause(0.3)
        select = app.main_screen.query_one("#train-plan")
        assert any("[@click=app.quit]x[b].yaml" in str(o[0]) for o in select._options)

        # history: stored records with markup, and records this version cannot read
        history = app.main_screen.query_one(HistoryPanel)
        await pilot.press("f7")
        table = app.main_screen.query_one("#history")
        await until(pilot, lambda: table.row_count >= 1, what="the stored run in the history")
        assert str(table.get_row_at(0)[1]) == SERIAL
        runs = store_runs(config)
        history.show(runs + [dict(runs[0], id=f"h{i}", serial=t, plan_id=t, variant=t, verdict=t, faults=[t])
                             for i, t in enumerate(HOSTILE)]
                     + [dict(runs[0], id="bad", duration_s="[/]", faults=None, serial=None)])
        await pilot.pause(0.3)
        assert table.row_count == len(HOSTILE) + 2
        # the record screen of the stored run
        table.focus()
        table.move_cursor(row=[str(table.get_row_at(i)[-1]) for i in range(table.row_count)].index(runs[0]["id"][:12]))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RecordScreen) and app.screen.record is not None,
                    what="the record screen")
        assert SERIAL in shown(app.screen.query_one("#record-body"))
        record = dict(app.screen.record, reason=HOSTILE[2], faults=HOSTILE, serial=HOSTILE[0])
        assert "[@click=app.quit]quit[/]" in str(render_record(record))
        await pilot.press("escape")
        await pilot.pause()

        # dialogs: a prompt whose text and pattern are markup, an abort of a serial with markup
        for text in HOSTILE:
            for style in ("message", "confirm", "input"):
                dialog = PromptDialog("F1", event(ev.PromptRequested, path=text, style=style, message=text,
                                                  pattern=text if style == "input" else None))
                await app.push_screen(dialog)
                await pilot.pause()
                message = shown(dialog.query_one(".dialog-message"))
                assert visible_text(text)[:30] in message and "\x1b" not in message  # ESC reaches no terminal
                if style == "input":  # the answer is checked against a pattern, even one that is no regex
                    dialog.query_one("#prompt-input").value = "[@click=app.quit]"
                    dialog._submit()
                    await pilot.pause()
                    refusal = shown(dialog.query_one("#prompt-error"))
                    assert "'[@click=app.quit]' does not match" in refusal or "is not valid" in refusal, refusal
                if dialog.is_attached:
                    dialog.dismiss(None)
                await pilot.pause()
            abort = ConfirmAbort("F1", text)
            await app.push_screen(abort)
            await pilot.pause()
            abort.dismiss(False)
            await pilot.pause()

        # toasts (error messages from anywhere)
        for text in HOSTILE:
            app.notify(text, severity="error")
        await pilot.pause(0.3)
        assert app.is_running and app.return_code is None
        assert app.main_screen is not None and not app._exit_renderables


async def test_an_unexpected_ui_error_stops_every_run_safely_and_exits_non_zero(station_config):
    app = OperatorApp(station_config, sim=True)
    with pytest.raises(ZeroDivisionError):
        async with app.run_test(size=(80, 24)) as pilot:
            await login(pilot, "op1")
            await scan(pilot, app, "F1", "PRM001")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, PromptDialog), what="the prompt dialog")
            assert panel(app, "F1").running

            def boom() -> None:
                raise ZeroDivisionError("a bug in the UI")

            app.set_timer(0.01, boom)
            await asyncio.sleep(5)  # the app ends on the error; run_test re-raises it
    assert app.return_code == 1 and isinstance(app.crash, ZeroDivisionError)
    (run,) = store_runs(station_config)
    assert run["serial"] == "PRM001" and run["verdict"] == "ABORTED" and run["status"] == "finished"
    from station.results.store import ResultStore

    with ResultStore(station_config.resolve_path(station_config.config.results.db), readonly=True) as store:
        record = store.record(run["id"])
    assert "operator UI closed" in (record["reason"] or "")
    assert record["safe_state"] and all(a["ok"] for a in record["safe_state"])
