"""Instruments as tables: SCPI settings and readings declared as rows, not f-strings.

A driver declares what it can set and read once, in the spirit of PyMeasure's
``Instrument.control`` (command, validator, unit) but async and refusing: a ``Setting``
checks its value with its validator (``drivers.validators``: out of range raises
``RangeError`` before a byte is sent, never clips) and renders the command; a ``Reading``
names the query and parses its reply. The same rows render the driver's command table for the
docs (``command_table``), so the table a reader sees is the one the driver sends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from drivers.errors import ProtocolError


def scpi_number(value: float) -> str:
    """A setpoint as sent on the wire: shortest exact-enough decimal (``400``, ``-12.5``, ``0.01``)."""
    return format(float(value), ".9g")


@dataclass(frozen=True)
class Checked:
    """A validator for a value the driver method checked itself, by a rule no ``Range`` says
    (a ramp of 0 meaning off, a limit sent negated); ``text`` is shown in the docs."""

    text: str

    def check(self, value: Any, *, what: str, instrument: str = "") -> Any:
        return value


@dataclass(frozen=True)
class Setting:
    """A setting command: ``command`` with ``{}`` where the value goes (after ``{mode}``-like
    keys given to ``render``), the ``validator`` that refuses bad values, the ``unit`` of the
    value and a one-line ``doc``."""

    command: str
    validator: Any  # Range | OneOf | None (a command without a value)
    unit: str
    doc: str
    format: Callable[[Any], str] = scpi_number

    def render(self, value: Any = None, *, instrument: str, what: str | None = None, **keys: str) -> str:
        """The command for ``value``, checked first; ``keys`` fill named fields (``{mode}``)."""
        head = self.command.format("{}", **keys) if keys else self.command
        if self.validator is None:
            return head
        checked = self.validator.check(value, what=what or self.doc, instrument=instrument)
        return head.format(self.format(checked))


@dataclass(frozen=True)
class Reading:
    """A query and how to parse its reply into a value in ``unit``."""

    command: str
    parser: Callable[[str], Any]
    unit: str
    doc: str

    def parse(self, reply: str, *, instrument: str) -> Any:
        """The parsed reply; a reply the parser refuses raises ``ProtocolError`` naming the query."""
        try:
            return self.parser(reply)
        except (ValueError, IndexError, KeyError) as exc:
            raise ProtocolError(f"unexpected reply {reply[:60]!r} ({exc})", instrument=instrument,
                                command=self.command) from None


@dataclass(frozen=True)
class Table:
    """A driver's rows, by name, for its methods and for the docs."""

    title: str
    rows: dict[str, Setting | Reading] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Setting | Reading:
        return self.rows[name]


def _range_text(row: Setting | Reading) -> str:
    if isinstance(row, Reading) or row.validator is None:
        return ""
    validator = row.validator
    if isinstance(validator, Checked):
        return validator.text
    if hasattr(validator, "values"):
        return "|".join(str(v) for v in validator.values)
    return f"{validator.low:g} … {validator.high:g}"


def command_table(tables: Iterable[Table]) -> str:
    """The Markdown command tables of ``tables`` (what ``docs/instrument-commands.md`` holds)."""
    out = ["# Instrument command tables", "",
           "Generated from the drivers' declared rows (`drivers/scpi_table.py`); a test fails when",
           "this file drifts from them. Regenerate with `python -m drivers.scpi_table > docs/instrument-commands.md`.", ""]
    for table in tables:
        out += [f"## {table.title}", "", "| command | values | unit | what |", "|---|---|---|---|"]
        for row in table.rows.values():
            command = row.command.replace("{}", "<value>").replace("|", "\\|")
            cells = [f"`{command}`", _range_text(row), row.unit, row.doc]
            out.append("| " + " | ".join(c.replace("|", "\\|") if i else c for i, c in enumerate(cells)) + " |")
        out.append("")
    return "\n".join(out)


def driver_tables() -> list[Table]:
    """The declared ``TABLE`` of every built-in driver that has one, by driver key (so a new
    driver's table joins the docs by its entry point alone)."""
    from drivers.registry import builtin, driver_class

    tables = []
    for key in builtin():
        table = getattr(driver_class(key), "TABLE", None)
        if isinstance(table, Table):
            tables.append(table)
    return tables


if __name__ == "__main__":
    # Run as a script this module is __main__: take the classes the drivers use.
    from drivers import scpi_table

    print(scpi_table.command_table(scpi_table.driver_tables()), end="")
