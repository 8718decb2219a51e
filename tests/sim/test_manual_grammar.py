"""The simulated SCPI instruments against the vendors' manuals, not against our drivers.

``tests/data/manuals/<model>.txt`` lists command forms as the programming manuals print them
(long and short forms, optional nodes, MIN|MAX|DEF, unit suffixes, IEEE 488.2 common commands);
each simulator must accept every one (no error queued) and answer every query. Forms a manual
does not list are answered with -113 "Undefined header", never accepted.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sim.instruments.chroma_19032 import SimChroma19032
from sim.instruments.itech_it6000 import SimItechCycler
from sim.instruments.keysight_34465a import SimKeysightDmm
from sim.instruments.kikusui_tos9300 import SimKikusuiTos9300
from sim.pack import PRESETS, Pack
from sim.wiring import Wiring

MANUALS = Path(__file__).resolve().parents[1] / "data" / "manuals"


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def keysight():
    return SimKeysightDmm(Pack(PRESETS["car-400"], seed=1))


def itech():
    return SimItechCycler(Pack(PRESETS["car-400"], seed=1))


def chroma():
    return SimChroma19032(Pack(PRESETS["car-400"], seed=1), Wiring(ir_pole="HV+"), clock=Clock())


def kikusui():
    return SimKikusuiTos9300(Pack(PRESETS["car-400"], seed=1), Wiring(ir_pole="HV+"), clock=Clock())


PEERS = {"keysight_34465a": keysight, "itech_it6000": itech, "chroma_19032": chroma, "kikusui_tos9300": kikusui}


def manual_forms(model: str) -> list[str]:
    lines = (MANUALS / f"{model}.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def errors(peer) -> list[str]:
    out = []
    while (reply := peer.execute("SYST:ERR?")[0]) != '+0,"No error"':
        out.append(reply)
    return out


@pytest.mark.parametrize("model", sorted(PEERS))
async def test_every_form_the_manual_lists_is_accepted_and_queries_answer(model):
    peer = PEERS[model]()
    forms = manual_forms(model)
    assert len(forms) >= 35
    for form in forms:
        replies = peer.execute(form)
        assert errors(peer) == [], f"{model}: {form!r} refused"
        units = [re.sub(r"STEP\s+(\d)", r"STEP\1", unit.strip()) for unit in form.split(";")]
        queries = sum(1 for unit in units if unit.split(" ")[0].endswith("?"))
        assert len(replies) == queries and all(r.strip() for r in replies), f"{model}: {form!r} -> {replies}"


NOT_IN_MANUAL = {
    "keysight_34465a": ["VOLTA:DC:RANG 10", "VOLT:DC:RANGE:AUTOMATIC ON", "SOUR:VOLT 5", "TRIG:SOURCEX BUS",
                        "*XYZ", "FETCH:ALL?", "CONF:VOLT:DC:XYZ 10", "VOLT:DC:RAN 10"],
    "itech_it6000": ["SOUR:VOLT:LEVE 400", "VOLT:LEV:IMM:AMP 400", "CURR:LIM:POSI 5", "OUTP:STATUS ON",
                     "MEAS:VOLT:AC?", "VOLTAGES 5", "SOUR:SOUR:VOLT 5"],
    "chroma_19032": ["SAFE:STEP1:IR:LIMIT:LOWER 1", "SAFE:STEP1:IR:TIM 1", "SAFE:STEP1:XX 5", "SAFE:STARTUP",
                     ":IR:LIM:LOW 1000000", "SAFE:RES:ALL:MMETE?",
                     "SAFE:STEP1:IR:RAMP 1"],
    "kikusui_tos9300": ["SAFE:STAR", "IR:VOLTS 500", "SENS:IR:JUDGE 1", "INIT:TESTS", "FUNC:MODE IR", "RESULTS?"],
}


@pytest.mark.parametrize("model", sorted(PEERS))
async def test_what_the_manual_does_not_list_is_an_undefined_header(model):
    peer = PEERS[model]()
    for form in NOT_IN_MANUAL[model]:
        assert peer.execute(form) == []
        assert errors(peer) == ['-113,"Undefined header"'], form


async def test_a_header_seen_before_resolves_the_same_and_a_command_added_later_is_seen():
    """Header matches are remembered per instrument: the second time gives the same answer (and
    the same refusal), and registering a command forgets what was remembered."""
    peer = itech()
    for _ in range(2):
        peer.execute("VOLT 380")
        assert float(peer.execute("VOLT?")[0]) == 380.0
        assert peer.execute("ACME:PING?") == []
        assert errors(peer) == ['-113,"Undefined header"']
    peer.command("ACME:PING?", lambda s, a: "pong")
    assert peer.execute("ACME:PING?") == ["pong"] and errors(peer) == []


async def test_itech_long_short_optional_nodes_units_and_keywords_set_the_same_value():
    peer = itech()
    for form, volts in [("SOUR:VOLT:LEV:IMM:AMPL 400", 400.0), ("VOLT 350V", 350.0), ("VOLT 0.3 kV", 300.0),
                        ("VOLT 5E+2 V", 500.0), ("voltage:level 250", 250.0), ("VOLT MAX", 1000.0),
                        ("VOLT MIN", 0.0)]:
        peer.execute(form)
        assert float(peer.execute("VOLT?")[0]) == pytest.approx(volts), form
    peer.execute("CURR 20mA")
    assert float(peer.execute("CURR?")[0]) == pytest.approx(0.02)
    peer.execute("CURR:LIM:POS 50")
    assert float(peer.execute("CURR:LIM?")[0]) == 50.0
    assert errors(peer) == []


async def test_bad_numbers_get_the_standard_errors_and_are_never_clipped():
    peer = itech()
    peer.execute("VOLT 400")
    for form, error in [("VOLT 400A", "-131"), ("VOLT 4x", "-131"), ("VOLT four", "-224"), ("VOLT 2000", "-222"), ("VOLT", "-109"),
                        ("*ESE 300", "-222")]:
        peer.execute(form)
        assert [e.split(",")[0] for e in errors(peer)] == [error], form
    assert float(peer.execute("VOLT?")[0]) == 400.0  # nothing refused was applied


async def test_status_registers_follow_ieee_488_2():
    peer = keysight()
    assert peer.execute("*STB?;*ESR?") == ["0", "0"]
    peer.execute("NOT:A:COMMAND")  # -113: a command error
    assert int(peer.execute("*STB?")[0]) & 4  # error queue not empty
    peer.execute("*ESE 32;*SRE 32")
    stb = int(peer.execute("*STB?")[0])
    assert stb & 32 and stb & 64  # ESB, and the master summary it enables
    assert int(peer.execute("*ESR?")[0]) & 32  # CME; reading clears it
    assert peer.execute("*ESR?") == ["0"]
    peer.execute("*OPC")
    assert int(peer.execute("*ESR?")[0]) & 1
    peer.execute("VOLT:DC:NPLC 1000")  # -222: an execution error
    assert int(peer.execute("*ESR?")[0]) & 16
    peer.execute("*CLS")
    assert peer.execute("*STB?;SYST:ERR?") == ["0", '+0,"No error"']


async def test_dmm_trigger_model_bus_trigger_then_fetch():
    peer = keysight()
    peer.execute("CONF:VOLT:DC 1000;:TRIG:SOUR BUS;:SAMP:COUN 3")
    peer.execute("INIT")
    assert peer.execute("FETC?") == [] and errors(peer) == ['-230,"Data stale"']
    peer.execute("*TRG")
    readings = [float(r) for r in peer.execute("FETC?")[0].split(",")]
    assert len(readings) == 3 and all(abs(r - peer.pack.bus_voltage()) < 0.1 for r in readings)
    peer.execute("*TRG")  # not armed any more
    assert errors(peer) == ['-211,"Trigger ignored"']


async def test_chroma_step_limits_and_times_by_the_manuals_names():
    peer = chroma()
    # After ';' a header continues the previous one's path (its last node dropped).
    peer.execute("SAFE:STEP1:IR 500;:SAFE:STEP1:IR:LIM:LOW 2000000;:SAFE:STEP1:IR:TIME:TEST 2;RAMP 0.5")
    assert peer.execute("SAFE:STEP1:IR:LIM?;:SAFE:STEP1:IR:TIME?;TIME:RAMP?") == \
        ["+2.000000E+06", "+2.000000E+00", "+5.000000E-01"]
    assert errors(peer) == []


async def test_kikusui_bare_abor_stops_a_running_test_as_the_vendors_sample_sends_it():
    clock = Clock()
    peer = SimKikusuiTos9300(Pack(PRESETS["car-400"], seed=1), Wiring(ir_pole="HV+"), clock=clock)
    assert peer.execute("FUNC IR;:IR:VOLT 500;:IR:VOLT:TIM 5;:SENS:IR:JUDG:DEL 2;DEL?") == ["+2.000000E+00"]
    peer.execute("SENS:IR:JUDG:DEL 200")  # the Judge Delay range ends at 100 s
    assert [e.split(",")[0] for e in errors(peer)] == ["-222"]
    peer.execute("INIT:TEST")
    clock.t = 1.0  # in the test time
    assert int(peer.execute("STAT:OPER:TEST:COND?")[0]) & 32
    peer.execute("ABOR")
    clock.t = 2.0
    assert int(peer.execute("STAT:OPER:TEST:COND?")[0]) & (16 | 32 | 64) == 0
    fields = peer.execute("RES?")[0].split(",")
    assert (fields[2], fields[13]) == ("IR", "ABORT")
    assert errors(peer) == []


ISSUE_FORMS = {  # the forms the simulators used to refuse, sent over a real loopback socket
    "keysight_34465a": ["VOLT:DC:RANG 100", "TRIG:SOUR BUS", "INIT", "*TRG", "FETC?", "*ESR?", "*STB?"],
    "itech_it6000": ["SOUR:VOLT:LEV:IMM:AMPL 400", "CURR:LIM:POS 50", "VOLT 400V", "VOLT MAX", "VOLT?"],
    "chroma_19032": ["SAFE:STEP1:IR 500", "SAFE:STEP1:IR:LIM:LOW 1000000", "SAFE:STEP1:IR:TIME:TEST 1",
                     "SAFE:STEP1:IR:TIME:TEST?"],
}


@pytest.mark.parametrize("model", sorted(ISSUE_FORMS))
async def test_the_forms_once_refused_work_over_tcp(model):
    import asyncio

    peer = PEERS[model]()
    host, port = (await peer.start()).rsplit(":", 1)
    try:
        reader, writer = await asyncio.open_connection(host, int(port))
        answers = []
        for form in ISSUE_FORMS[model] + ["SYST:ERR?"]:
            writer.write(form.encode() + b"\n")
            await writer.drain()
            if form.endswith("?"):
                answers.append((await asyncio.wait_for(reader.readline(), 5)).decode().strip())
        writer.close()
    finally:
        await peer.stop()
    assert answers[-1] == '+0,"No error"' and all(answers)
