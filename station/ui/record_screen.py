"""One run's record from the history: what was tested, measured and done to make the pack safe;
``r`` writes its HTML report (station.results.html_report) next to the result store and opens it
where the terminal has a browser."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import webbrowser
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Label, Static

from station.results.record import display_verdict, format_quantity
from station.ui.run_state import ICONS, STYLES, VERDICT_STYLES
from station.ui.safe_text import data, sanitize
from station.ui.verdict import limits_words


def _local(utc: Any) -> str:
    try:
        t = dt.datetime.fromisoformat(str(utc))
    except ValueError:
        return str(utc)
    local = (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).astimezone()
    return local.strftime("%Y-%m-%d %H:%M:%S %Z")


def render_record(record: dict[str, Any]) -> Text:
    """The record as text for the screen; every value from the store is data, never markup."""
    verdict = display_verdict(record)
    out = Text()
    out.append(f" {verdict} ", style=f"bold reverse {VERDICT_STYLES.get(verdict, '')}")
    plan = record.get("plan") or {}
    out.append(f"  {record.get('serial')} · {plan.get('id')} {plan.get('version')} · {record.get('variant') or 'default'}\n",
               style="bold")
    mode = ("FAULTS INJECTED: " + " ".join(map(str, record.get("faults") or [])) if record.get("faults")
            else "simulated" if record.get("simulated") else "hardware")
    out.append(f"run {record.get('run_id')} · fixture {record.get('fixture_id')} · operator {record.get('operator')} · "
               f"{mode}\n")
    out.append(f"started {_local(record.get('started_utc'))} · "
               f"{format_quantity(record.get('duration_s'), 's') if record.get('duration_s') is not None else '—'}\n")
    if record.get("reason"):
        out.append(f"reason: {record['reason']}\n", style="bold")
    for step in record.get("steps") or []:
        outcome = step.get("outcome") or "unfinished"
        out.append(f"{ICONS.get(outcome, '?')} {step.get('path')}\n", style=STYLES.get(outcome, "bold"))
        for m in step.get("measurements") or []:
            mark = "red" if m.get("verdict") == "fail" else ("yellow" if m.get("verdict") == "marginal" else "")
            need = limits_words(m.get("limits") or {}, m.get("unit") or "")
            out.append(f"   {m.get('name')}: {format_quantity(m.get('value'), m.get('unit'))}"
                       f"{f' (must be {need})' if need else ''} {m.get('verdict')}\n", style=mark)
        if step.get("error"):
            out.append(f"   {step['error']}\n", style="magenta")
    if record.get("safe_state"):
        out.append("safe state:\n", style="bold yellow")
        for a in record["safe_state"]:
            out.append(f" {'✔' if a.get('ok') else '✘'} {a.get('instrument')}: {a.get('action')}"
                       f"{'' if a.get('ok') else ': ' + str(a.get('error'))}\n")
    for e in record.get("errors") or []:
        out.append(f"⚠ {e.get('source')} {e.get('where')}: {e.get('message')}\n", style="bold magenta")
    out.rstrip()
    return sanitize(out)


class RecordScreen(Screen):
    """The record of one run; Escape back to the history, r the HTML report."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back"), Binding("r", "report", "HTML report")]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.record: dict[str, Any] | None = None
        self.report_path: Path | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(data(f"record {self.run_id}"), id="record-title", markup=False)
            yield Label("", id="record-note", markup=False)
            with VerticalScroll(id="record-scroll"):
                yield Static("loading…", id="record-body", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True)
    async def load(self) -> None:
        backend = self.app.backend  # type: ignore[attr-defined]
        body = self.query_one("#record-body", Static)
        try:
            self.record = await asyncio.wrap_future(backend.submit(backend.record(self.run_id)))
        except Exception as err:
            body.update(data(f"the record cannot be read: {type(err).__name__}: {err}", "bold red"))
            return
        try:
            body.update(render_record(self.record))
        except Exception as err:  # a record this version cannot lay out: show it escaped, as it is
            body.update(data(f"(shown raw: {type(err).__name__}: {err})\n{self.record!r}"))
        self.query_one("#record-scroll").focus()

    def action_report(self) -> None:
        note = self.query_one("#record-note", Label)
        if self.record is None:
            note.update(Text("the record is not loaded yet"))
            return
        from station.results.html_report import write_html

        backend = self.app.backend  # type: ignore[attr-defined]
        folder = backend.reports_dir()
        try:
            self.report_path = write_html(self.record, folder / f"{self.run_id}.html")
        except OSError as err:
            note.update(data(f"report not written: {err}", "bold red"))
            return
        opened = False
        if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("BROWSER"):
            opened = webbrowser.open(self.report_path.as_uri())
        note.update(data(f"HTML report {'opened' if opened else 'written'}: {self.report_path}", "bold green"))
