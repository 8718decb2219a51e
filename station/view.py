"""The CLI's live progress: a rich step table in a terminal, plain lines otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from typing import Any

from station.events import (
    Event,
    MeasurementTaken,
    MonitorTripped,
    RunFinished,
    RunStarted,
    SafeStateAction,
    StepFinished,
    StepStarted,
)
from station.safetext import markup_safe, printable

ICON = {"passed": "PASS", "failed": "FAIL", "error": "ERR ", "skipped": "skip", "aborted": "ABRT"}
COLOR = {"passed": "green", "failed": "red", "error": "magenta", "skipped": "dim", "aborted": "yellow"}


class PlainView:
    """One line per finished step and per failed measurement; safe-state actions; the verdict."""

    def __init__(self, out=None) -> None:
        self.out = out or sys.stdout
        self.failed: list[str] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def __call__(self, event: Event) -> None:
        line = self.line(event)
        if line:  # serials, paths and replies come from outside: one inert line each
            with contextlib.suppress(OSError):  # the terminal was closed (SIGHUP): the record goes on
                print(printable(line), file=self.out, flush=True)

    def line(self, e: Event) -> str | None:
        if isinstance(e, RunStarted):
            return (f"run {e.run_id}  plan {e.plan_id} {e.plan_version} variant {e.variant or '-'}  "
                    f"serial {e.serial}  fixture {e.fixture_id}" + ("  [simulated]" if e.simulated else ""))
        if isinstance(e, StepFinished):
            extra = f"  {e.error}" if e.error else ""
            return f"{e.t:9.1f}s  {ICON.get(e.outcome, e.outcome):4}  {e.path}{extra}"
        if isinstance(e, MeasurementTaken) and e.verdict != "pass":
            self.failed.append(printable(f"{e.path}: {e.name} = {e.text}"))
            return f"{'':11}  {e.verdict.upper():4}    {e.name} = {e.text}"
        if isinstance(e, MonitorTripped):
            return f"{e.t:9.1f}s  TRIP  {e.signal} = {e.value:g} ({e.limit})"
        if isinstance(e, SafeStateAction):
            state = f"  FAILED: {e.error}" if not e.ok else ("" if e.confirmed else "  (NOT CONFIRMED)")
            return f"{'':11}  SAFE  {e.instrument}: {e.action}{state}"
        if isinstance(e, RunFinished):
            return f"{e.t:9.1f}s  verdict {e.verdict}" + (f" ({e.reason})" if e.reason else "")
        return None

    def summary(self, verdict: str, run_id: str) -> None:
        with contextlib.suppress(OSError):
            print(f"{verdict}  record {run_id}", file=self.out, flush=True)


class RichView(PlainView):
    """A live table of the last steps with a progress line, then the verdict in colour."""

    def __init__(self) -> None:
        super().__init__()
        from rich.console import Console

        self.console = Console()
        self.rows: list[tuple[str, str, str]] = []
        self.current = ""
        self.planned = 0
        self.done = 0
        self.header = ""
        self.live = None

    def __enter__(self):
        from rich.live import Live

        self.live = Live(self._render(), console=self.console, refresh_per_second=8, transient=False)
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            with contextlib.suppress(OSError):  # the terminal was closed (SIGHUP)
                self.live.update(self._render())
                self.live.__exit__(*exc)

    def _render(self):
        from rich.table import Table

        table = Table(title=self.header, expand=False, show_lines=False)
        table.add_column("step", overflow="fold")
        table.add_column("outcome")
        table.add_column("detail", overflow="fold")
        for path, outcome, detail in self.rows[-18:]:
            table.add_row(markup_safe(path), f"[{COLOR.get(outcome, 'white')}]{markup_safe(ICON.get(outcome, outcome))}[/]",
                          markup_safe(detail))
        if self.current:
            table.add_row(f"[bold]{markup_safe(self.current)}[/]", "[cyan]…[/]", "")
        table.caption = f"{self.done}/{self.planned or '?'} steps"
        return table

    def __call__(self, event: Event) -> None:
        e = event
        if isinstance(e, RunStarted):
            self.header = markup_safe(self.line(e) or "")
            self.planned = e.planned_steps
        elif isinstance(e, StepStarted):
            self.current = e.path
        elif isinstance(e, MeasurementTaken):
            self.line(e)
            if e.verdict != "pass":
                self.rows.append((f"  {e.name}", "failed", e.text))
        elif isinstance(e, StepFinished):
            self.done += 1
            self.current = ""
            self.rows.append((e.path, e.outcome, e.error or ""))
        elif isinstance(e, (SafeStateAction, MonitorTripped)):
            self.rows.append((self.line(e).strip(), "skipped", ""))
        if self.live is not None:
            self.live.update(self._render())

    def summary(self, verdict: str, run_id: str) -> None:
        from rich.markup import escape

        color = {"PASS": "bold white on green", "FAIL": "bold white on red"}.get(verdict, "bold black on yellow")
        with contextlib.suppress(OSError):
            self.console.print(f"[{color}]  {verdict}  [/] record {run_id}")
            for line in self.failed:
                self.console.print(f"  [red]{escape(line)}[/]")  # already printable()


def make_view(plain: bool = False) -> PlainView:
    return PlainView() if plain or not sys.stdout.isatty() else RichView()


def make_prompter(answers: list[str]):
    """Answers from --answer in order; else ask on a terminal; else None (the plan's defaults)."""
    queue = list(answers)
    if not queue and not sys.stdin.isatty():
        return None
    terminal = TerminalAnswers()

    async def prompter(req: Any) -> str:
        if queue:
            return queue.pop(0)
        question = f"{req.message} " + ("[y/n] " if req.style == "confirm" else "> ")
        return await terminal.ask(question)

    return prompter


class TerminalAnswers:
    """Questions to the operator at the terminal, answered by the lines typed there.

    One daemon thread reads stdin and hands each line to the oldest question still waiting: a
    question abandoned by an aborted step (its future cancelled) no longer takes a line, so the
    teardown's own prompt after an abort gets the next one. Not the loop's executor: a run
    stopped while a question is open must not keep the process alive at exit waiting for a
    line nobody will type. The clock is held on real time while a question waits.
    """

    def __init__(self) -> None:
        self._waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[str]]] = []
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None

    async def ask(self, question: str) -> str:
        from station.clock import real_time

        loop = asyncio.get_running_loop()
        answer: asyncio.Future[str] = loop.create_future()
        with self._lock:
            self._waiting.append((loop, answer))
            if self._reader is None or not self._reader.is_alive():
                self._reader = threading.Thread(target=self._read, name="operator-prompt", daemon=True)
                self._reader.start()
        with contextlib.suppress(OSError):
            print(question, end="", flush=True)
        with real_time():
            return await answer

    def _read(self) -> None:
        while True:
            try:
                line = sys.stdin.readline()
                failure = None if line else EOFError("the terminal closed")
            except (OSError, ValueError) as err:  # the terminal was hung up
                line, failure = "", err
            with self._lock:
                waiting = [(loop, fut) for loop, fut in self._waiting if not fut.done()]
                if failure is not None:
                    self._waiting.clear()
                    targets = waiting
                else:
                    targets = waiting[:1]
                    self._waiting = waiting[1:]
            for loop, fut in targets:
                if failure is not None:
                    self._deliver(loop, fut, fut.set_exception, OSError(f"no answer from the terminal: {failure}"))
                else:
                    self._deliver(loop, fut, fut.set_result, line.rstrip("\r\n"))
            if failure is not None:
                return

    @staticmethod
    def _deliver(loop: asyncio.AbstractEventLoop, fut: asyncio.Future[str], setter: Any, value: Any) -> None:
        def put() -> None:
            if not fut.done():
                setter(value)

        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(put)
