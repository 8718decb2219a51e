"""What one fixture's run looks like, folded from the sequencer's events (no Textual here).

``RunState.apply(event)`` keeps the step list, measurements, progress, safe-state actions and
verdict; ``render_steps()`` turns them into Rich text for the fixture column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import mean
from typing import Any

from rich.text import Text

from station import events as ev

ICONS = {"running": "▶", "passed": "✔", "failed": "✘", "error": "⚠", "skipped": "·", "aborted": "■"}
STYLES = {"running": "bold", "passed": "green", "failed": "bold red", "error": "bold magenta",
          "skipped": "dim", "aborted": "yellow"}
VERDICT_STYLES = {"PASS": "green", "FAIL": "red", "ERROR": "magenta", "ABORTED": "yellow"}


@dataclass
class StepLine:
    path: str
    name: str
    status: str = "running"
    measurements: list[ev.MeasurementTaken] = field(default_factory=list)
    error: str | None = None


@dataclass
class RunState:
    """One run on one fixture, as far as the events have told."""

    serial: str = ""
    plan: str = ""
    variant: str | None = None
    planned: int = 0
    done: int = 0
    t: float = 0.0
    steps: dict[str, StepLine] = field(default_factory=dict)
    current: str | None = None
    safe: list[ev.SafeStateAction] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    prompts: int = 0
    verdict: str | None = None
    reason: str | None = None
    run_id: str = ""

    def apply(self, e: ev.Event) -> None:
        self.t = max(self.t, e.t)
        self.run_id = e.run_id
        if isinstance(e, ev.RunStarted):
            self.serial, self.plan, self.variant = e.serial, f"{e.plan_id} {e.plan_version}", e.variant
            self.planned = e.planned_steps
        elif isinstance(e, ev.StepStarted):
            line = self.steps.setdefault(e.path, StepLine(e.path, e.name))
            line.status = "running"
            self.current = e.path
        elif isinstance(e, ev.MeasurementTaken):
            self.steps.setdefault(e.path, StepLine(e.path, e.name)).measurements.append(e)
        elif isinstance(e, ev.StepFinished):
            line = self.steps.setdefault(e.path, StepLine(e.path, e.step_id))
            line.status, line.error = e.outcome, e.error
            if e.attempt == 1:  # a retried step is still one step of progress
                self.done += 1
            if self.current == e.path:
                self.current = None
        elif isinstance(e, ev.SafeStateAction):
            self.safe.append(e)
        elif isinstance(e, ev.PromptRequested):
            self.prompts += 1
        elif isinstance(e, ev.MonitorTripped):
            self.errors.append(f"monitor {e.signal} = {e.value:g} beyond {e.limit}")
        elif isinstance(e, ev.LogMessage) and e.level in ("error", "warning"):
            self.errors.append(e.message)
        elif isinstance(e, ev.RunFinished):
            self.verdict, self.reason = e.verdict, e.reason
            self.current = None

    @property
    def in_safe_state(self) -> bool:
        return bool(self.safe) and self.verdict is None

    def failed_measurements(self) -> list[ev.MeasurementTaken]:
        return [m for line in self.steps.values() for m in line.measurements if m.verdict == "fail"]

    def errored_steps(self) -> list[StepLine]:
        return [line for line in self.steps.values() if line.status == "error"]

    def time_left(self, typical_s: float | None) -> float | None:
        """Seconds left: from earlier runs' durations when known, else from the step rate so far."""
        if typical_s:
            return max(typical_s - self.t, 0.0)
        if self.done and self.planned:
            return max(self.t / self.done * (self.planned - self.done), 0.0)
        return None

    def render_steps(self) -> Text:
        out = Text(no_wrap=True, overflow="ellipsis")
        for line in self.steps.values():
            style = STYLES.get(line.status, "")
            if line.path == self.current:
                style += " reverse"
            out.append(f"{ICONS.get(line.status, '?')} {short(line.path)}\n", style=style)
            for m in line.measurements:
                if m.limits or m.verdict != "pass":
                    mark = "red" if m.verdict == "fail" else ("yellow" if m.verdict == "marginal" else "dim")
                    out.append("  └ ", style="dim")
                    out.append(f"{m.name}: {m.text}\n", style=mark)
            if line.error and line.status in ("error", "aborted"):
                out.append("  └ ", style="dim")
                out.append(f"{line.error}\n", style=STYLES[line.status])
        if self.safe:
            out.append("safe state:\n", style="bold yellow")
            for action in self.safe:
                mark = "✔" if action.ok else "✘"
                text = action.action if action.ok else f"{action.action}: {action.error}"
                out.append(f" {mark} {action.instrument}: {text}\n", style="yellow" if action.ok else "bold red")
        for err in self.errors:
            out.append(f"⚠ {err}\n", style="bold magenta")
        out.rstrip()
        return out


def short(path: str) -> str:
    """``main/isolation/iso_plus`` → ``isolation/iso_plus`` (the phase is implied by position)."""
    head, _, rest = path.partition("/")
    return rest if head == "main" and rest else path


def typical_duration(runs: list[dict[str, Any]], plan_id: str, variant: str | None) -> float | None:
    """Mean duration of finished PASS runs of this plan and variant, newest 20 (None if none)."""
    durations = [r["duration_s"] for r in runs if r.get("plan_id") == plan_id and r.get("variant") == variant
                 and r.get("verdict") == "PASS" and r.get("duration_s")][:20]
    return mean(durations) if durations else None


def format_live(values: dict[str, float]) -> str:
    """One line of live pack values as the BMS signals give them: pack V and A, SOC in % (the
    signal maps' unit: 0.8 is 0.8 %, never 80 %), min/max cell V and °C."""
    def g(name: str, fmt: str) -> str:
        return format(values[name], fmt) if name in values else "–"

    soc = values.get("soc")
    # whole percent, but a tenth near empty, where it tells a deep-discharged pack apart
    soc_text = "–" if soc is None else f"{soc:.1f}" if abs(soc) < 10 else f"{soc:.0f}"
    return (f"{g('pack_voltage', '.1f')} V {g('pack_current', '.1f')} A SOC {soc_text} % · "
            f"cell {g('cell_voltage_min', '.3f')}–{g('cell_voltage_max', '.3f')} V "
            f"{g('cell_temperature_min', '.0f')}–{g('cell_temperature_max', '.0f')} °C")
