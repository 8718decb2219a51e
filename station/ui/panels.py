"""The station panel (instruments and their state) and the shift history (packs, FPY, cycle time)."""

from __future__ import annotations

import datetime as dt
from statistics import mean
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Label

from station.ui.backend import InstrumentRow
from station.ui.run_state import VERDICT_STYLES

SHIFT_HOURS = 8.0
STATE_STYLES = {"connected": "green", "simulated": "cyan", "error": "bold red", "not opened": "yellow"}


class StationPanel(Vertical):
    """Every instrument per fixture: driver, resource, state, identity, calibration due; above
    them the start-up check (interrupted runs, each fixture's safe state)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._rows: dict[tuple[str, str], InstrumentRow] = {}
        self._startup: dict[str, list[str]] = {}  # "" -> interrupted runs; fixture -> its check

    def compose(self) -> ComposeResult:
        yield Label("", id="station-summary")
        yield Label("", id="startup-report")
        yield DataTable(id="instruments", zebra_stripes=True, cursor_type="row")

    def show_startup(self, key: str, lines: list[str]) -> None:
        """Start-up lines of one fixture (``key``) or, with key "", the interrupted runs."""
        self._startup[key] = list(lines)
        if self.is_mounted:
            self._redraw_startup()

    def _redraw_startup(self) -> None:
        text = Text()
        for key in sorted(self._startup):
            for line in self._startup[key]:
                style = "bold red" if line.startswith("NOT SAFE") else "bold yellow" if line.startswith("INTERRUPTED") else "green"
                text.append(("\n" if text else "") + line, style=style)
        self.query_one("#startup-report", Label).update(text)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("fixture", "role", "state", "cal. due", "identity", "driver", "resource")
        self._redraw()
        self._redraw_startup()

    def show(self, fixture: str, rows: list[InstrumentRow]) -> None:
        for row in rows:
            self._rows[(fixture, row.role)] = row
        if self.is_mounted:
            self._redraw()

    def _redraw(self, today: dt.date | None = None) -> None:
        today = today or dt.date.today()
        table = self.query_one(DataTable)
        table.clear()
        problems = []
        for (fx, role), row in sorted(self._rows.items()):
            due = row.calibration_due
            overdue = bool(due) and dt.date.fromisoformat(due) < today
            if row.state == "error" or overdue:
                problems.append(f"{fx}.{role}")
            state = Text(row.state, style=STATE_STYLES.get(row.state, ""))
            identity = row.identity or row.problem
            table.add_row(fx, role, state, Text(due or "—", style="bold red" if overdue else ""),
                          identity if len(identity) <= 40 else identity[:39] + "…", row.driver, row.resource)
        summary = self.query_one("#station-summary", Label)
        if problems:
            summary.update(Text(f"not ready: {', '.join(problems)} (missing or past calibration)", style="bold red"))
        else:
            summary.update(Text(f"{len(self._rows)} instruments ready", style="green"))


def shift_stats(runs: list[dict[str, Any]], now: dt.datetime | None = None,
                hours: float = SHIFT_HOURS) -> tuple[list[dict[str, Any]], float | None, float | None]:
    """Runs of the shift (newest first), first-pass yield (0..1) and mean cycle time (s)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    since = now - dt.timedelta(hours=hours)
    shift = [r for r in runs if r.get("started_utc") and dt.datetime.fromisoformat(r["started_utc"]) >= since]
    first: dict[str, str] = {}
    for run in reversed(shift):  # oldest first: a pack's first verdict of the shift counts
        if run.get("verdict"):
            first.setdefault(run["serial"], run["verdict"])
    fpy = sum(v == "PASS" for v in first.values()) / len(first) if first else None
    durations = [r["duration_s"] for r in shift if r.get("duration_s") and r.get("verdict") in ("PASS", "FAIL")]
    return shift, fpy, (mean(durations) if durations else None)


class HistoryPanel(Vertical):
    """The last packs: serial, verdict, time; first-pass yield and average cycle time."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._runs: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        yield Label("", id="history-summary")
        yield DataTable(id="history", zebra_stripes=True, cursor_type="row")

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns("time", "serial", "verdict", "plan", "cycle", "record")
        self._redraw()

    def show(self, runs: list[dict[str, Any]]) -> None:
        self._runs = runs
        if self.is_mounted:
            self._redraw()

    def _redraw(self) -> None:
        shift, fpy, cycle = shift_stats(self._runs)
        table = self.query_one(DataTable)
        table.clear()
        for run in shift[:50]:
            started = run.get("started_utc") or ""
            verdict = run.get("verdict") or run.get("status") or "?"
            table.add_row(started[11:19], run.get("serial", ""), Text(verdict, style=VERDICT_STYLES.get(verdict, "")),
                          f"{run.get('plan_id', '')} {run.get('variant') or ''}",
                          f"{run['duration_s']:.0f} s" if run.get("duration_s") else "—", (run.get("id") or "")[:12])
        fpy_text = "—" if fpy is None else f"{fpy:.0%}"
        cycle_text = "—" if cycle is None else f"{cycle:.0f} s"
        self.query_one("#history-summary", Label).update(
            f"shift (last {SHIFT_HOURS:.0f} h): {len(shift)} runs · first-pass yield {fpy_text} · "
            f"avg cycle {cycle_text}")
