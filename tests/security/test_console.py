"""Console output is data: a serial with a newline and ANSI escapes cannot forge a line."""

from __future__ import annotations

import io
import shutil

import pytest

from station.cli import main
from station.events import MeasurementTaken, RunStarted, StepFinished
from station.results.commands import results_list, results_show
from station.results.store import ResultStore
from station.safetext import has_controls, markup_safe, printable
from station.security.audit import AuditLog
from station.view import PlainView, RichView

from .conftest import SMOKE

FORGED = "SN1\n\x1b[1;32mPASS\x1b[0m  record 0000000000000000\x1b]0;owned\x07\u202e"


def _started(serial: str) -> RunStarted:
    return RunStarted("r1", "2026-01-01T00:00:00Z", 0.0, serial, "smoke", "1.0.0", "Smoke", "p.yaml", "0" * 64,
                      "car-400", {}, "EOL", "F1", "op1", "0.1", True)


def test_printable_escapes_controls_and_keeps_text():
    assert printable("142 mΩ ≥ 80 kΩ, µs") == "142 mΩ ≥ 80 kΩ, µs"
    assert printable(FORGED) == ("SN1\\n\\x1b[1;32mPASS\\x1b[0m  record 0000000000000000\\x1b]0;owned\\x07\\u202e")
    assert printable("a\\nb") == "a\\\\nb"  # a literal backslash-n cannot pass for an escaped newline
    assert "\n" not in printable("\u2028x\r") and has_controls("GS1\x1d01") and not has_controls("CAR0001")
    assert markup_safe("[red]x[/]") == "\\[red]x\\[/]"


def test_plain_view_prints_one_inert_line_per_event():
    out = io.StringIO()
    view = PlainView(out)
    view(_started(FORGED))
    view(StepFinished("r1", "u", 1.0, "main/x\n", "x", "failed", 0.1, error="\x1b[2Jcleared"))
    view(MeasurementTaken("r1", "u", 1.0, "main/x", "v\rPASS", 1.0, "V", {}, "fail", "1 V\n"))
    text = out.getvalue()
    assert len(text.splitlines()) == 3
    assert text.splitlines()[0].startswith("run r1  plan smoke") and "serial SN1\\n\\x1b[1;32mPASS" in text
    assert "\x1b" not in text and "\r" not in text


def test_rich_view_renders_markup_and_escapes_as_text():
    from rich.console import Console

    view = RichView()
    view.console = Console(file=io.StringIO(), force_terminal=False, width=120)
    view(_started("ENG[/]1" + FORGED))  # a closing tag with nothing open crashed rich before
    view(StepFinished("r1", "u", 1.0, "main/[bold]x[/]", "x", "failed", 0.1, error="[/]\x1b[31m"))
    view.console.print(view._render())
    view.summary("FAIL", "r1")
    text = view.console.file.getvalue()
    assert "ENG[/]1" in text and "[bold]x[/]" in text and "\x1b" not in text


def test_station_run_refuses_a_forged_serial_before_anything_and_prints_it_escaped(tmp_path, capsys):
    plan = tmp_path / "smoke.yaml"
    shutil.copy(SMOKE, plan)
    code = main(["run", str(plan), "--sim", "--serial", FORGED, "--plain", "--db", str(tmp_path / "r.db")])
    out, err = capsys.readouterr()
    assert code == 2 and "is not a pack serial" in err
    assert "\x1b" not in err and "\n" not in err.strip() and out == ""
    assert not (tmp_path / "r.db").exists()  # refused before the store (or anything else) was opened
    log = AuditLog(tmp_path / "audit.jsonl")  # ... and the attempt is on the audit trail, escaped
    refusals = [e for e in log.entries() if e["kind"] == "refusal"]
    assert [e["fields"]["what"] for e in refusals] == ["serial refused"] and log.verify() == []
    assert "\x1b" not in refusals[0]["fields"]["serial"] and "\n" not in refusals[0]["fields"]["serial"]


@pytest.fixture
def hostile_store(tmp_path):
    """A store whose one run has a forged serial (written straight into its rows: a store is
    outside data to whoever reads it)."""
    db = tmp_path / "s.db"
    store = ResultStore(db).open()
    try:
        store.handle(_started("SN1"))
    finally:
        store.close()
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute("UPDATE runs SET serial = ?, verdict = 'FAIL', status = 'finished'", (FORGED,))
    conn.commit()
    conn.close()
    return db


@pytest.mark.parametrize("tty", [False, True])
def test_results_list_and_show_print_a_forged_serial_inert(hostile_store, tty):
    class Out(io.StringIO):
        def isatty(self):
            return tty

    out = Out()
    assert results_list(hostile_store, out=out) == 0
    assert results_show(hostile_store, "r1", out=out) == 0
    text = out.getvalue()
    # a terminal gets rich's own styling, never the serial's escapes
    assert "SN1\\n" in text and "\x1b[1;32mPASS" not in text and "\x1b]0;owned" not in text
    assert "\x07" not in text and "\u202e" not in text
    assert not any(line.lstrip().startswith("PASS") for line in text.splitlines())
    if not tty:
        assert "\x1b" not in text
