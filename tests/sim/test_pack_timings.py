"""Pack files describe the contactors' operate and release times and the coolant circuit
(volume and leak flow); the simulated BMS and leak tester follow them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from drivers.base.diagnostics import InputError
from sim.bms.state_machine import BmsStateMachine
from sim.pack.catalogue import PACKS_DIR, load_pack
from sim.pack.model import Pack
from station import clock

CAR_400 = PACKS_DIR / "car-400.yaml"


def _pack_file(tmp_path: Path, **replace: str) -> Path:
    text = CAR_400.read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "timed.yaml"
    path.write_text(text)
    return path


def _closed(pack: Pack) -> tuple[bool, bool, bool]:
    return tuple(pack.contactor_closed(n) for n in ("main_minus", "precharge", "main_plus"))


def test_contactors_close_and_open_after_their_operate_and_release_times(tmp_path):
    path = _pack_file(tmp_path, **{"coolant:": "contactors: {close_ms: 30, open_ms: 15}\ncoolant:"})
    spec = load_pack(path).spec
    assert (spec.contactor_close_s, spec.contactor_open_s) == (0.030, 0.015)

    async def sequence() -> dict[str, object]:
        loop = asyncio.get_running_loop()
        pack = Pack(spec)
        machine = BmsStateMachine(pack, precharge_timeout=2.0, request_timeout=60.0)
        seen: dict[str, object] = {}
        t0 = loop.time()
        machine.request("normal", t0)
        await asyncio.sleep(0.010)
        seen["at 10 ms"] = _closed(pack)  # the coils are still pulling in
        await asyncio.sleep(0.025)
        seen["at 35 ms"] = _closed(pack)
        while machine.state != "normal":
            await asyncio.sleep(0.001)
        seen["closed after"] = loop.time() - t0
        seen["closed"] = _closed(pack)
        await asyncio.sleep(0.020)
        seen["precharge released"] = _closed(pack)
        machine.request("standby", loop.time())
        await asyncio.sleep(0.010)
        seen["open +10 ms"] = _closed(pack)
        await asyncio.sleep(0.010)
        seen["open +20 ms"] = _closed(pack)
        return seen

    seen = clock.run(sequence(), virtual=True)
    assert seen["at 10 ms"] == (False, False, False)
    assert seen["at 35 ms"][:2] == (True, True)
    # two operate times (precharge pair, then main+) on top of the precharge itself
    assert seen["closed after"] >= 0.060 and seen["closed"] == (True, True, True)
    assert seen["precharge released"] == (True, False, True)
    assert seen["open +10 ms"] == (True, False, True)  # still held: the release takes 15 ms
    assert seen["open +20 ms"] == (False, False, False)


def test_without_timings_contactors_switch_at_once():
    spec = load_pack(CAR_400).spec
    assert (spec.contactor_close_s, spec.contactor_open_s) == (0.0, 0.0)

    async def sequence():
        pack = Pack(spec)
        machine = BmsStateMachine(pack, precharge_timeout=2.0, request_timeout=60.0)
        machine.request("normal", asyncio.get_running_loop().time())
        await asyncio.sleep(0)
        first = _closed(pack)
        while machine.state != "normal":
            await asyncio.sleep(0.001)
        machine.request("standby", asyncio.get_running_loop().time())
        return first, _closed(pack)

    first, after = clock.run(sequence(), virtual=True)
    assert first[:2] == (True, True) and after == (False, False, False)


def test_coolant_circuit_from_its_volume_and_leak_flow(tmp_path):
    # 0.5 sccm into 8 L: dP/dt = 0.5 cm3/min * 101325 Pa / 8000 cm3 = 6.333 Pa/min
    path = _pack_file(tmp_path, **{"coolant: {leak_rate_pa_per_min: 4.0}": "coolant: {volume_l: 8, leak_sccm: 0.5}"})
    assert load_pack(path).spec.coolant_leak_rate == pytest.approx(0.5 * 101325 / 8000)


@pytest.mark.parametrize(("coolant", "message"), [
    ("coolant: {leak_sccm: 0.5}", "leak_sccm needs volume_l"),
    ("coolant: {volume_l: 8}", "give the leak as leak_rate_pa_per_min or as leak_sccm"),
    ("coolant: {leak_rate_pa_per_min: 4.0, volume_l: 8, leak_sccm: 0.5}", "one of them"),
    ("coolant: {volume_l: -8, leak_sccm: 0.5}", "'volume_l': Input should be greater than 0"),
])
def test_a_coolant_circuit_that_does_not_add_up_is_a_located_error(tmp_path, coolant, message):
    path = _pack_file(tmp_path, **{"coolant: {leak_rate_pa_per_min: 4.0}": coolant})
    with pytest.raises(InputError) as err:
        load_pack(path)
    problem = err.value.problems[0]
    assert message in problem.message and problem.file == str(path) and problem.line == 29, problem
