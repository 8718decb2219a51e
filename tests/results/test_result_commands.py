"""``station results list|show|export`` functions: exit codes and plain-text output."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import pytest
from result_events import aborted_run, full_run

from station.results import ResultStore
from station.results.commands import results_export, results_list, results_show


@pytest.fixture
def db(db_path):
    with ResultStore(db_path) as store:
        for e in full_run() + aborted_run():
            store.handle(e)
    return db_path


def call(fn, *args, **kw):
    out, err = io.StringIO(), io.StringIO()
    code = fn(*args, out=out, err=err, **kw)
    return code, out.getvalue(), err.getvalue()


def test_list_plain_text(db):
    code, out, err = call(results_list, db, limit=10, serial=None)
    lines = out.splitlines()
    assert code == 0 and err == ""
    assert lines[0].split("\t")[:3] == ["run-abort-0002", "ABORTED", "PK-0002"]
    assert lines[1].startswith("run-full-0001\tFAIL\t") and "pack-eol 3.2.0" in lines[1]
    code, out, _ = call(results_list, db, limit=10, serial="PK-0002")
    assert code == 0 and len(out.splitlines()) == 1
    code, out, _ = call(results_list, db, limit=10, serial="nobody")
    assert code == 0 and out.strip() == "no runs for serial nobody"


def test_show_summarises_failures(db):
    code, out, _ = call(results_show, db, "run-full")  # a unique prefix is enough
    assert code == 0
    assert out.startswith("verdict:  FAIL (2 measurements out of limits)")
    assert "fail       main/bond[BP2]/bond_res resistance = 142 mΩ, limits ≤ 100 mΩ" in out
    assert "error      main/dcir: InstrumentTimeout: cycler: no reply" in out
    assert "[safe_state] bms: open contactors failed" in out


def test_missing_db_and_unknown_run_exit_2_without_traceback(db, tmp_path):
    missing = tmp_path / "none" / "results.db"
    for fn, args in ((results_list, (missing,)), (results_show, (missing, "x"))):
        code, _out, err = call(fn, *args)
        assert code == 2 and str(missing) in err and "Traceback" not in err
    assert not missing.exists()  # reading never creates a store
    code, _, err = call(results_show, db, "zzz")
    assert code == 2 and err.startswith("error: ") and "no run with id 'zzz'" in err
    code, _, err = call(results_show, db, "run-")
    assert code == 2 and "more than one run" in err
    code, _, err = call(results_export, db, "run-full", fmt="pdf", path=tmp_path / "x")
    assert code == 2 and "unknown format 'pdf'" in err


@pytest.mark.parametrize("fmt", ["json", "junit", "html"])
def test_export_each_format(db, tmp_path, fmt):
    target = tmp_path / "exports" / f"run.{fmt}"
    code, out, err = call(results_export, db, "run-full-0001", fmt=fmt, path=target)
    assert (code, err) == (0, "") and out.strip() == f"wrote {target}"
    text = target.read_text(encoding="utf-8")
    if fmt == "json":
        assert json.loads(text)["verdict"] == "FAIL"
    elif fmt == "junit":
        assert ET.fromstring(text.encode()).get("failures") == "2"
    else:
        assert 'data-series="dcir_pulse"' in text


def test_export_to_an_unwritable_place(db, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = call(results_export, db, "run-full-0001", fmt="json", path=blocker / "x.json")
    assert code == 2 and "cannot write" in err


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_output_uses_rich(db):
    out = _Tty()
    assert results_show(db, "run-abort-0002", out=out) == 0
    assert "ABORTED" in out.getvalue() and "\t" not in out.getvalue()
    out = _Tty()
    assert results_list(db, out=out) == 0
    assert "run-full-0001" in out.getvalue() and "┃" in out.getvalue()  # a rich table


def test_show_lists_every_step_and_a_terminal_never_wraps_a_limit(db, monkeypatch):
    code, out, _ = call(results_show, db, "run-full")
    assert code == 0
    rows = out.split("\n\n", 1)[1].splitlines()
    assert rows[0].startswith("step / measurement") and "margin" in rows[0]
    bond = next(i for i, line in enumerate(rows) if line.startswith("main/bond[BP2]/bond_res"))
    assert rows[bond + 1].split()[:4] == ["resistance", "fail", "142", "mΩ"]
    assert "42 mΩ beyond max" in rows[bond + 1]
    monkeypatch.setenv("COLUMNS", "90")  # a narrow terminal: the path and name columns give way
    tty = _Tty()
    assert results_show(db, "run-full", out=tty) == 0
    shown = tty.getvalue()
    assert "≤ 100 mΩ" in shown and "42 mΩ beyond max" in shown
