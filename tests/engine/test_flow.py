"""Plan flow: retries, when, for_each, parallel groups, includes, computed measurements."""

from __future__ import annotations

import asyncio

from station import clock


def test_retry_on_error_then_pass(h):
    h.instruments["dmm"].error_at = {1}
    verdict, _seq = h.run("""
main:
  - id: v
    dmm.voltage: {}
    retry: {count: 2, on: [error], delay: 1 s}
""")
    assert verdict == "PASS"
    attempts = [(e.attempt, e.outcome) for e in h.of("StepFinished") if e.path == "main/v"]
    assert attempts == [(1, "error"), (2, "passed")]


def test_retry_exhausted_keeps_the_last_outcome(h):
    h.instruments["dmm"].volts = [420.0]
    verdict, _ = h.run("""
main:
  - id: v
    dmm.voltage: {}
    expect: {voltage: {max: 410 V}}
    retry: {count: 2, on: [failed]}
""")
    assert verdict == "FAIL"
    assert [e.attempt for e in h.of("StepFinished")] == [1, 2, 3]


def test_when_over_parameters_and_earlier_results(h):
    verdict, _ = h.run("""
parameters:
  with_hipot: false
main:
  - id: v
    dmm.voltage: {}
  - id: skipped_by_param
    when: with_hipot
    dmm.voltage: {}
  - id: run_by_result
    when: "v.voltage > 300 V and v.outcome == 'passed'"
    dmm.voltage: {}
  - id: skipped_by_result
    when: "${v.voltage < 300 V}"
    dmm.voltage: {}
""")
    assert verdict == "PASS"
    out = h.outcomes()
    assert out["main/skipped_by_param"] == "skipped"
    assert out["main/run_by_result"] == "passed"
    assert out["main/skipped_by_result"] == "skipped"


def test_for_each_over_a_parameter_list(h):
    verdict, _ = h.run("""
parameters:
  bond_points: [BP1, BP2, BP3]
main:
  - id: bond
    for_each: {point: "${bond_points}"}
    steps:
      - id: r
        safety.ground_bond: {point: "${point}", points: "${bond_points}", dwell: 2 s}
        expect: {resistance: {max: 100 mOhm}}
""")
    assert verdict == "PASS"
    assert [p for p in h.outcomes() if p.startswith("main/bond")] == [
        "main/bond[BP1]/r", "main/bond[BP2]/r", "main/bond[BP3]/r"]
    assert len(h.rec.names("safety")) == 3 + 1  # three bonds, then the safe state


def test_parallel_group_runs_children_at_once(h):
    async def main():
        seq = h.sequencer("""
main:
  - id: both
    parallel: true
    steps:
      - station.wait: 10 s
      - station.wait: 10 s
      - id: v
        dmm.voltage: {}
""")
        verdict = await seq.run()
        return verdict, [e for e in h.of("StepFinished")]

    verdict, finished = clock.run(main(), virtual=True)
    assert verdict == "PASS"
    waits = [e for e in finished if "station.wait" in e.path]
    assert len(waits) == 2 and all(abs(e.t - 10.0) < 0.01 for e in waits)  # both ended at t=10, not 10 and 20


def test_include_with_arguments_twice(h):
    h.write("lib_iso.yaml", """\
schema_version: 1
kind: library
id: lib-iso
version: 1.0.0
title: One pole's insulation
parameters:
  pole: HV+
  v: 500 V
  floor: 100 MOhm
main:
  - id: ir
    safety.insulation: {pole: "${pole}", voltage: "${v}", dwell: 3 s}
    expect: {resistance: {min: "${floor}"}}
""")
    verdict, _ = h.run("""
parameters:
  v_test: 800 V
main:
  - bms.insulation_monitor: disable
  - id: plus
    include: lib_iso.yaml
    with: {pole: HV+, v: "${v_test}"}
  - id: minus
    include: lib_iso.yaml
    with: {pole: HV-, v: "${v_test}", floor: 1 GOhm}
""")
    assert verdict == "FAIL"  # 500 MOhm reading < 1 GOhm floor on the second include only
    assert h.outcomes() == {"main/bms.insulation_monitor@1": "passed", "main/plus/ir": "passed", "main/minus/ir": "failed"}
    volts = [args[0] for who, what, args in h.rec.calls if what == "insulation"]
    assert volts == [800.0, 800.0]
    relays = [args for who, what, args in h.rec.calls if what == "set_output" and args[1]]
    assert relays == [("ir_hv_plus", True), ("ir_hv_minus", True)]


def test_computed_measurement_from_earlier_results(h):
    h.instruments["dmm"].volts = [400.4]
    verdict, _ = h.run("""
main:
  - id: dmm_v
    dmm.voltage: {}
  - id: delta
    station.calc: {dv: "${abs(dmm_v.voltage - 400 V)}", ratio: "${dmm_v.voltage / 400 V}"}
    expect:
      dv: {max: 0.5 V}
      ratio: {nominal: 1, tolerance: 0.5 %}
""")
    assert verdict == "PASS"
    dv = next(m for m in h.of("MeasurementTaken") if m.name == "dv")
    assert abs(dv.value - 0.4) < 1e-9 and dv.unit == "V"


def test_variant_overrides_parameters_and_limits(h):
    body = """
parameters:
  v_nom: 400 V
variants:
  car: {}
  bus:
    parameters: {v_nom: 700 V}
    limits: {v.voltage: {min: 690 V, max: 710 V}}
main:
  - id: v
    dmm.voltage: {}
    expect: {voltage: {nominal: "${v_nom}", tolerance: 2 %}}
"""
    h.instruments["dmm"].volts = [700.0]
    bound = h.bind(body, variant="bus")
    seq = h.build(bound)
    assert clock.run(seq.run(), virtual=True) == "PASS"
    assert next(m.limits for m in h.of("MeasurementTaken") if m.name == "voltage")["min"] == 690.0
    h.events.clear()
    h.instruments["dmm"].reads = 0
    seq = h.build(h.bind(body, variant="car"))
    assert clock.run(seq.run(), virtual=True) == "FAIL"


def test_two_fixtures_share_one_safety_tester_serialised(h, tmp_path):
    """Two packs at once: the shared tester is never used by both at the same time."""
    shared = h.instruments["safety"]
    lock = asyncio.Lock
    body = """
parameters:
  bond_points: [BP1, BP2, BP3, BP4]
main:
  - id: wait
    station.wait: 30 s
  - id: bond
    for_each: {point: "${bond_points}"}
    steps:
      - safety.ground_bond: {point: "${point}", points: "${bond_points}", dwell: 5 s}
"""

    async def main():
        locks = {"safety": lock()}
        events: list = []
        seqs = []
        for fixture in ("F1", "F2"):
            seqs.append(h.build(h.bind(body, name=f"{fixture}.yaml"), serial=f"SN-{fixture}", fixture_id=fixture,
                                locks=locks, events=events))
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        verdicts = await asyncio.gather(*(s.run() for s in seqs))
        return verdicts, loop.time() - t0

    verdicts, elapsed = clock.run(main(), virtual=True)
    assert verdicts == ["PASS", "PASS"]
    assert shared.max_busy == 1  # never both at once
    assert len([c for c in h.rec.calls if c[1] == "ground_bond"]) == 8
    # concurrent: the 30 s waits overlapped; only the 8 x 5 s bond tests were serialised
    assert 70.0 <= elapsed < 80.0
