"""Instruments as tables: the declared rows refuse (never clip), and the docs' command tables
are the rows (docs/instrument-commands.md drifts -> this fails)."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers import scpi, scpi_table
from drivers.cycler import itech_it6000
from drivers.errors import ProtocolError, RangeError
from drivers.safety import chroma_19032, kikusui_tos9300
from drivers.scpi_table import Reading, Setting, command_table, driver_tables
from drivers.validators import Range

DOC = Path(__file__).resolve().parents[2] / "docs" / "instrument-commands.md"


def test_the_command_tables_doc_is_generated_from_the_rows():
    assert DOC.read_text() == command_table(driver_tables()), \
        "docs/instrument-commands.md drifted: run python -m drivers.scpi_table > docs/instrument-commands.md"


def test_every_scpi_driver_declares_its_table_and_the_doc_names_every_row():
    titles = {t.title for t in driver_tables()}
    assert {"Keysight 34465A (`keysight_34465a`)", "ITECH IT6000C (`itech_it6000`)",
            "Chroma 19032 (`chroma_19032`)", "Kikusui TOS9300 (`kikusui_tos9300`)"} <= titles
    text = DOC.read_text()
    for table in driver_tables():
        for row in table.rows.values():
            assert row.command.replace("{}", "<value>").replace("|", "\\|") in text


def test_a_setting_refuses_out_of_range_and_never_clips():
    row = Setting("VOLT {}", Range(0.0, 1000.0, "V"), "V", "CV setpoint")
    assert row.render(400, instrument="cycler") == "VOLT 400"
    assert row.render(0.01, instrument="cycler") == "VOLT 0.01"
    for bad in (1000.5, -1, float("nan"), "400", True):
        with pytest.raises(RangeError, match="cycler: CV setpoint"):
            row.render(bad, instrument="cycler")


def test_keyed_rows_and_readings_parse_or_name_the_query():
    row = Setting("SAFE:STEP 1:{mode}:TIME {}", Range(0.3, 999.0, "s"), "s", "dwell")
    assert row.render(2, instrument="safety", mode="DC") == "SAFE:STEP 1:DC:TIME 2"
    reading = Reading("STAT:OPER:TEST:COND?", int, "bits", "phase")
    assert reading.parse("+256", instrument="safety") == 256
    with pytest.raises(ProtocolError, match=r"STAT:OPER:TEST:COND\?"):
        reading.parse("RUNNING", instrument="safety")


def test_one_scpi_number_and_no_driver_reimplements_the_scpi_base():
    assert scpi.scpi_number is scpi_table.scpi_number
    assert not hasattr(itech_it6000, "scpi_number") or itech_it6000.scpi_number is scpi_table.scpi_number
    assert not hasattr(chroma_19032, "scpi_number")
    for cls in (chroma_19032.Chroma19032, kikusui_tos9300.KikusuiTos9300):
        for name in ("identify", "_query", "_query_float", "_query_int", "_check_errors", "_transport"):
            assert name not in vars(cls), f"{cls.__name__} re-implements {name}"
