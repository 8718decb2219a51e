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
from station.ui.safe_text import data, sanitize

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
        self.query_one("#startup-report", Label).update(sanitize(text))

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
            try:
                overdue = bool(due) and dt.date.fromisoformat(due) < today
            except ValueError:  # a date the instrument or config gave in another form: show it as it is
                overdue = False
            if row.state == "error" or overdue:
                problems.append(f"{fx}.{role}")
            identity = row.identity or row.problem
            table.add_row(data(fx), data(role), data(row.state, STATE_STYLES.get(row.state, "")),
                          data(due or "—", "bold red" if overdue else ""),
                          data(identity if len(identity) <= 40 else identity[:39] + "…"), data(row.driver),
                          data(row.resource))
        summary = self.query_one("#station-summary", Label)
        if problems:
            summary.update(data(f"not ready: {', '.join(problems)} (missing or past calibration)", "bold red"))
        else:
            summary.update(Text(f"{len(self._rows)} instruments ready", style="green"))


def _started(run: dict[str, Any]) -> dt.datetime | None:
    try:
        t = dt.datetime.fromisoformat(run["started_utc"])
    except (KeyError, TypeError, ValueError):
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def is_training(run: dict[str, Any], roles: dict[str, str] | None = None) -> bool:
    """A run that is no production test of a pack: faults were injected, or an engineer/admin ran
    it on the simulated station (training mode). Such runs do not count in first-pass yield."""
    if run.get("faults"):
        return True
    return bool(run.get("simulated")) and (roles or {}).get(run.get("operator") or "", "") in ("engineer", "admin")


def shift_stats(runs: list[dict[str, Any]], now: dt.datetime | None = None, hours: float = SHIFT_HOURS,
                roles: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], float | None, float | None]:
    """Runs of the shift (newest first), first-pass yield (0..1) and mean cycle time (s); training
    and fault-injected runs are listed but counted in neither."""
    now = now or dt.datetime.now(dt.UTC)
    since = now - dt.timedelta(hours=hours)
    shift = [r for r in runs if (t := _started(r)) is not None and t >= since]
    counted = [r for r in shift if not is_training(r, roles)]
    first: dict[str, str] = {}
    for run in reversed(counted):  # oldest first: a pack's first verdict of the shift counts
        if run.get("verdict"):
            first.setdefault(str(run.get("serial")), run["verdict"])
    fpy = sum(v == "PASS" for v in first.values()) / len(first) if first else None
    durations = [r["duration_s"] for r in counted if isinstance(r.get("duration_s"), (int, float))
                 and r.get("verdict") in ("PASS", "FAIL")]
    return shift, fpy, (mean(durations) if durations else None)


def local_zone(now: dt.datetime | None = None) -> str:
    """The station's local time zone as a label: ``CET, UTC+01:00``."""
    local = (now or dt.datetime.now(dt.UTC)).astimezone()
    offset = local.strftime("%z")
    return f"{local.tzname()}, UTC{offset[:3]}:{offset[3:]}"


class HistoryPanel(Vertical):
    """The last packs: serial, verdict, local time; first-pass yield and average cycle time.
    Enter on a row opens the run's record (and from there its HTML report)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._runs: list[dict[str, Any]] = []
        self.roles: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Label("", id="history-summary", markup=False)
        yield DataTable(id="history", zebra_stripes=True, cursor_type="row")

    def on_mount(self) -> None:
        self.roles = {op.id: op.role for op in self.app.config.config.operators}  # type: ignore[attr-defined]
        self.query_one(DataTable).add_columns(f"time ({local_zone().split(',')[0]})", "serial", "verdict", "mode",
                                              "plan", "cycle", "record")
        self._redraw()

    def show(self, runs: list[dict[str, Any]]) -> None:
        self._runs = runs
        if self.is_mounted:
            self._redraw()

    def _row(self, run: dict[str, Any]) -> list[Text]:
        started = _started(run)
        verdict = str(run.get("verdict") or run.get("status") or "?")
        faults = run.get("faults") or []
        mode = (data("FAULT " + " ".join(map(str, faults)), "bold magenta") if faults
                else Text("TRAINING", style="bold cyan") if is_training(run, self.roles) else Text(""))
        duration = run.get("duration_s")
        return [Text(started.astimezone().strftime("%H:%M:%S") if started else "?"), data(run.get("serial", "")),
                data(verdict, VERDICT_STYLES.get(verdict, "")), mode,
                data(f"{run.get('plan_id', '')} {run.get('variant') or ''}"),
                Text(f"{duration:.0f} s" if isinstance(duration, (int, float)) else "—"),
                data(str(run.get("id") or "")[:12])]

    def _redraw(self) -> None:
        shift, fpy, cycle = shift_stats(self._runs, roles=self.roles)
        table = self.query_one(DataTable)
        table.clear()
        for run in shift[:50]:
            try:
                cells = self._row(run)
            except Exception as err:  # a record this version cannot read: shown escaped, not fatal
                cells = [Text("?"), data(repr(run.get("serial"))), Text("?"), Text(""), data(repr(run)[:60]),
                         Text(type(err).__name__), data(str(run.get("id") or "")[:12])]
            table.add_row(*cells, key=str(run.get("id") or id(run)))
        fpy_text = "—" if fpy is None else f"{fpy:.0%}"
        cycle_text = "—" if cycle is None else f"{cycle:.0f} s"
        excluded = sum(1 for r in shift if is_training(r, self.roles))
        self.query_one("#history-summary", Label).update(Text(
            f"shift (last {SHIFT_HOURS:.0f} h): {len(shift)} runs · first-pass yield {fpy_text} · avg cycle "
            f"{cycle_text}" + (f" · {excluded} training/fault runs not counted" if excluded else "")
            + f" · times {local_zone()} · Enter opens a record"))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        run_id = event.row_key.value if event.row_key else None
        if run_id and any(r.get("id") == run_id for r in self._runs):
            from station.ui.record_screen import RecordScreen

            self.app.push_screen(RecordScreen(run_id))
