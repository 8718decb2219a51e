"""Helpers to build, bind and run small plans against fake instruments on virtual time."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from station import clock
from station.engine.parts import Instruments, Outlets, RunInfo
from station.engine.sequencer import Sequencer
from station.plan.bind import bind_plan
from station.plan.loader import load_plan
from tests.engine.fakes import FakeBms, FakeDmm, FakeFixture, FakeSafety, Recorder

HEADER = """\
schema_version: 1
id: t
version: 1.0.0
title: engine test
instruments: [dmm, fixture, bms, safety]
"""


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.rec = Recorder()
        self.events: list = []
        self.instruments = {
            "dmm": FakeDmm("dmm", self.rec),
            "fixture": FakeFixture("fixture", self.rec),
            "bms": FakeBms("bms", self.rec),
            "safety": FakeSafety("safety", self.rec),
        }

    def write(self, name: str, body: str) -> Path:
        path = self.tmp / name
        path.write_text(textwrap.dedent(body))
        return path

    def bind(self, body: str, variant=None, name="plan.yaml"):
        path = self.write(name, HEADER + textwrap.dedent(body))
        return bind_plan(load_plan(path), variant, set(self.instruments))

    def sequencer(self, body: str, *, critical=(), locks=None) -> Sequencer:
        return self.build(self.bind(body), critical=critical, locks=locks)

    def build(self, bound, *, critical=(), locks=None, serial="SN1", fixture_id="F1", events=None) -> Sequencer:
        """A Sequencer of ``bound`` on this harness's (open) instruments, its events into ``events``."""
        sink = self.events if events is None else events
        return Sequencer(bound, Instruments(self.instruments, locks=locks or {}),
                         RunInfo(serial=serial, fixture_id=fixture_id),
                         Outlets(critical=critical, subscribers=[sink.append]))

    def run(self, body: str, **kw) -> tuple[str, Sequencer]:
        seq = self.sequencer(body, **kw)
        return clock.run(seq.run(), virtual=True), seq

    def of(self, kind: str) -> list:
        return [e for e in self.events if type(e).__name__ == kind]

    def outcomes(self) -> dict[str, str]:
        return {e.path: e.outcome for e in self.of("StepFinished")}


@pytest.fixture
def h(tmp_path) -> Harness:
    return Harness(tmp_path)
