"""The start-up check in the run's record: one ``StartupChecked`` event journalled right after
``RunStarted`` (same stamp: the check ran before the run), so the record holds what was found,
what was done and what was read back, as data (``record["startup"]``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from station.events import Event, RunStarted, StartupChecked, make


def journal_with_startup(journal: Callable[[Event], None], check: Any) -> Callable[[Event], None]:
    """``journal`` that also journals ``check`` (a ``station.startup_check.FixtureCheck``) after
    the run's ``RunStarted``; every other event passes through unchanged."""

    def handle(event: Event) -> None:
        journal(event)
        if isinstance(event, RunStarted):
            data = check.to_dict()
            journal(make(StartupChecked, event.run_id, event.utc, event.t,
                         {"fixture": data["fixture"], "safe": data["safe"], "found": data["found"],
                          "done": data["done"], "after": data["after"]}))

    return handle
