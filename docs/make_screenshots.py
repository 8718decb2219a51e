"""Capture the operator UI's screens as SVG (Textual ``save_screenshot``) into docs/screenshots/.

Run from the repo root: ``.venv/bin/python docs/make_screenshots.py``. Uses a throw-away copy of
the simulated station (released plans, its own result store) at 80x24, the smallest terminal the
operator UI is made for; nothing else is touched.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from station.config import load_config  # noqa: E402
from station.ui.app import OperatorApp  # noqa: E402
from station.ui.dialogs import PromptDialog  # noqa: E402
from station.ui.record_screen import RecordScreen  # noqa: E402
from tests.ui.conftest import write_station  # noqa: E402

OUT = REPO / "docs" / "screenshots"
SIZE = (80, 24)


async def wait(pilot, condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out; screenshots incomplete")
        await pilot.pause(0.02)


async def capture(tmp: Path) -> None:
    app = OperatorApp(load_config(write_station(tmp)), sim=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.save_screenshot("login.svg", path=str(OUT))
        await pilot.press(*"eng1", "enter")
        await pilot.pause(0.5)
        f1 = app.main_screen.query_one("#fx-F1")
        f2 = app.main_screen.query_one("#fx-F2")
        # F2: a clean bus pack; F1: a car pack with low insulation injected (training mode)
        f2.serial_input.focus()
        await pilot.press(*"BUS0042", "enter", "enter")
        await wait(pilot, lambda: f2.state.done >= 6 or f2.state.verdict is not None)
        app.save_screenshot("running.svg", path=str(OUT))
        await wait(pilot, lambda: f2.state.verdict is not None and not f2.running)
        await pilot.press("f8")
        app.main_screen.query_one("#train-faults-F1").focus()
        await pilot.press(*"isolation_low", "enter", "f1")
        f1.serial_input.focus()
        await pilot.press(*"CAR0007", "enter", "enter")
        await wait(pilot, lambda: f1.state.verdict is not None and not f1.running)
        await pilot.pause(0.3)
        app.save_screenshot("verdict.svg", path=str(OUT))
        app.main_screen.query_one("#train-faults-F1").value = ""
        await pilot.press("f1")
        f1.serial_input.focus()
        await pilot.press(*"PRM0001", "enter", "enter")
        await wait(pilot, lambda: isinstance(app.screen, PromptDialog))
        await pilot.pause(0.3)
        app.save_screenshot("prompt.svg", path=str(OUT))
        await pilot.press("y")
        await wait(pilot, lambda: f1.state.verdict is not None and not f1.running)
        await pilot.press("f6")
        await pilot.pause(0.3)
        app.save_screenshot("station.svg", path=str(OUT))
        await pilot.press("f7")
        table = app.main_screen.query_one("#history")
        await wait(pilot, lambda: table.row_count >= 3)
        await pilot.pause(0.3)
        app.save_screenshot("history.svg", path=str(OUT))
        table.focus()
        table.move_cursor(row=1)  # the FAIL of CAR0007: its record, as the history opens it
        await pilot.press("enter")
        await wait(pilot, lambda: isinstance(app.screen, RecordScreen) and app.screen.record is not None)
        await pilot.pause(0.3)
        app.save_screenshot("record.svg", path=str(OUT))


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(capture(Path(tmp)))
    for svg in sorted(OUT.glob("*.svg")):
        print(svg.relative_to(REPO))


if __name__ == "__main__":
    main()
