"""Chaos against the out-of-process bench: kill, stop and signal the station or the bench in the
middle of a run, then judge the bench's physical state as an outside client (SCPI to the cycler,
the safety tester and the DMM, Modbus to the fixture PLC, the BMS's own CAN frames).

Reaction times are printed (``pytest -s``) for docs/reliability.md; the assertions are about
behaviour, never about speed.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from drivers.cycler.itech_it6000 import PROTECTION_BITS
from tests.hardware.bench import (
    Bench,
    CanObserver,
    StationProcess,
    contactors_open,
    load_record,
    run_station,
    station_args,
    wait_until,
)

PLAN = "test_plans/pack_eol.yaml"
EVERY_INSTRUMENT = {"safety", "cycler", "bms", "leak", "fixture", "dmm"}
SAFE_BUS = 60.0  # V: below this the DC link is touch-safe
WDT = PROTECTION_BITS["WDT"]  # the cycler's latched communication-watchdog trip


@pytest.fixture
def bench(tmp_path):
    bench = Bench(tmp_path / "bench").start()
    yield bench
    bench.stop()


@pytest.fixture
def observer(bench):
    obs = CanObserver(bench)
    yield obs
    obs.close()


def start_run(bench: Bench, tmp_path, serial: str) -> StationProcess:
    return StationProcess(station_args(PLAN, bench.station_file, variant="car-400", serial=serial, workdir=tmp_path))


def wait_for_charge(run: StationProcess, observer: CanObserver) -> None:
    """Until the SOC adjustment draws current from the pack (seen on the BMS's own frames)."""
    run.wait_for_line("main/balancing/bal_off")
    since = time.monotonic()
    assert wait_until(lambda: observer.first_after(since, "values", lambda v: abs(v["PackCurrent"]) > 50), 30), \
        run.output


def wait_for_hv_test(run: StationProcess, bench: Bench) -> None:
    """Until the insulation tester's HV test runs (iso_plus)."""
    run.wait_for_line("main/isolation/imd_off")
    assert wait_until(lambda: bench.safety() == "RUNNING", 30, period=0.005), run.output


def assert_bench_safe(bench: Bench, observer: CanObserver | None = None) -> dict:
    """The bench's physical state, judged from outside: no source on, no HV, relays released."""
    cycler = bench.cycler()
    coils = bench.coils()
    # the DC link discharges through its bleed once the contactors are open: as the station's own
    # confirmation does, allow it the time to fall (a few seconds of wall time at the lane's speed)
    deadline = time.monotonic() + 5.0
    bus = bench.bus_voltage()
    while bus >= SAFE_BUS and time.monotonic() < deadline:
        time.sleep(0.2)
        bus = bench.bus_voltage()
    state = {"cycler": cycler, "safety": bench.safety(), "coils": coils, "bus_V": bus}
    assert not cycler["output"] and abs(cycler["current"]) < 1.0, state
    assert state["safety"] == "STOPPED", state
    assert not (coils["ir_hv_plus"] or coils["ir_hv_minus"] or coils["hvil_break"]), state
    assert state["bus_V"] < SAFE_BUS, state
    # an unpowered BMS sends nothing (its last frame is from before LV off) and holds no contactor
    if observer is not None and observer.last("states") is not None and coils["lv_power"]:
        state["bms"] = observer.last("states")[1]
        assert contactors_open(state["bms"]), state
    return state


def safe_state_by_instrument(record: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for action in record["safe_state"]:
        out.setdefault(action["instrument"], []).append(action)
    return out


@pytest.mark.timeout(300)
def test_kill_9_mid_charge_then_the_next_run_finds_and_clears_what_it_left(bench, observer, tmp_path):
    run = start_run(bench, tmp_path, "CARKILL1")
    wait_for_charge(run, observer)
    killed = run.signal(signal.SIGKILL)
    assert run.wait() == -signal.SIGKILL
    # Nothing of the station is left: the BMS must open its contactors by itself (its request
    # watchdog) and the cycler switch its output off (its communication watchdog). The cycler
    # is not asked (a command would feed its watchdog): the DMM sees the DC link it would hold.
    stopped = wait_until(lambda: observer.first_after(killed, "values", lambda v: abs(v["PackCurrent"]) < 1.0), 30)
    opened = wait_until(lambda: observer.first_after(killed, "states", contactors_open), 30)
    touch_safe = wait_until(lambda: bench.bus_voltage() < SAFE_BUS, 30, period=0.05)
    bus_safe = time.monotonic() - killed
    print(f"\nkill -9 mid-charge: pack current < 1 A after {stopped:.2f} s, contactors open after {opened:.2f} s, "
          f"DC link < {SAFE_BUS:g} V after {bus_safe:.2f} s (wall; bench at {bench.speed:g}x)")
    assert stopped is not None and opened is not None and touch_safe
    cycler = bench.cycler()
    assert not cycler["output"] and cycler["condition"] & WDT, cycler  # off by itself, WDT latched

    # The next run: its start-up check reports what it found and clears the latch once the
    # fixture is confirmed safe, so the cycler's steps work again.
    again = run_station(station_args(PLAN, bench.station_file, variant="car-400", serial="CARKILL2",
                                     workdir=tmp_path))
    startup = [line for line in again.stderr.splitlines() if line.startswith("start-up:")]
    print("the next run's start-up check:\n" + "\n".join(startup))
    assert any("cycler" in line for line in startup), again.stderr
    assert any("WDT" in line for line in startup), again.stderr  # the latched protection, by name
    assert again.returncode == 0, again.stdout + again.stderr
    record = load_record(tmp_path, "CARKILL2")
    soc = next(s for s in record["steps"] if s["path"] == "main/soc/soc_adjust")
    assert soc["outcome"] == "passed", soc
    assert "INTERRUPTED" in again.stderr and "CARKILL1" in again.stderr  # the killed run is reported
    cycler = bench.cycler()
    assert not cycler["output"] and cycler["condition"] == 0, cycler


@pytest.mark.timeout(300)
@pytest.mark.parametrize("signals", [(signal.SIGHUP,), (signal.SIGTERM, signal.SIGTERM)], ids=["sighup", "double-sigterm"])
def test_signal_mid_hv_step_reaches_the_safe_state_and_the_record_says_so(bench, observer, tmp_path, signals):
    serial = f"CARSIG{len(signals)}"
    run = start_run(bench, tmp_path, serial)
    wait_for_hv_test(run, bench)
    sent = run.signal(signals[0])
    for sig in signals[1:]:
        time.sleep(0.05)  # while the safe state runs
        run.signal(sig)
    hv_off = wait_until(lambda: bench.safety() == "STOPPED", 30, period=0.005)
    hv_off_s = time.monotonic() - sent
    code = run.wait()
    print(f"\n{'+'.join(signal.Signals(s).name for s in signals)} mid-insulation test: HV test stopped after "
          f"{hv_off_s:.3f} s, station exited {code} after {time.monotonic() - sent:.2f} s (wall)")
    assert hv_off
    assert (code, "Traceback" in run.output) == (3, False), run.output
    record = load_record(tmp_path, serial)
    assert record["verdict"] == "ABORTED", record["reason"]
    assert signal.Signals(signals[0]).name in (record["reason"] or ""), record["reason"]
    done = safe_state_by_instrument(record)
    assert set(done) >= EVERY_INSTRUMENT, sorted(done)
    assert all(a["ok"] for actions in done.values() for a in actions), record["safe_state"]
    # the plan's teardown ran to its end: the LV supply was switched off
    teardown = {s["path"]: s["outcome"] for s in record["steps"] if s["phase"] == "teardown"}
    assert teardown.get("teardown/release/fixture.lv_power@4") == "passed", teardown
    if len(signals) > 1:  # the further signal did not cancel anything, and it is on the record
        assert any("SIGTERM" in json.dumps(entry) for entry in record["log"]), record["log"]
    state = assert_bench_safe(bench, observer)
    assert not state["coils"]["lv_power"], state


@pytest.mark.timeout(300)
def test_sigstop_of_the_bench_for_5_s_is_noticed_and_the_safe_state_attempted(bench, observer, tmp_path):
    run = start_run(bench, tmp_path, "CARSTOP")
    wait_for_charge(run, observer)
    bench.proc.send_signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    time.sleep(5.0)
    bench.proc.send_signal(signal.SIGCONT)
    code = run.wait()
    print(f"\nSIGSTOP of the bench for 5 s mid-charge: station exited {code} "
          f"{time.monotonic() - stopped_at:.2f} s after the stop (wall)")
    assert (code, "Traceback" in run.output) == (3, False), run.output
    record = load_record(tmp_path, "CARSTOP")
    # ERROR (an instrument timed out) or ABORTED (a monitor lost its signal, the interlock poll
    # lost the fixture: a monitor abort) — whichever noticed first; never a product verdict
    assert record["verdict"] in ("ERROR", "ABORTED"), (record["verdict"], record["reason"])
    named = " ".join(e["message"] for e in record["errors"]) + " " + (record["reason"] or "")
    assert any(f"{role}:" in named for role in EVERY_INSTRUMENT), named  # the instrument, by name
    assert set(safe_state_by_instrument(record)) >= EVERY_INSTRUMENT, record["safe_state"]
    assert_bench_safe(bench, observer)


@pytest.mark.timeout(300)
def test_kill_9_of_the_bench_ends_the_run_in_error_without_a_traceback(bench, observer, tmp_path):
    run = start_run(bench, tmp_path, "CARDEAD")
    wait_for_charge(run, observer)
    bench.proc.kill()
    killed = time.monotonic()
    code = run.wait()
    print(f"\nkill -9 of the bench mid-charge: station exited {code} after {time.monotonic() - killed:.2f} s (wall)")
    assert code == 3, run.output
    assert "Traceback" not in run.output, run.output
    record = load_record(tmp_path, "CARDEAD")
    assert record["verdict"] in ("ERROR", "ABORTED"), (record["verdict"], record["reason"])  # as above
    lost = [e["message"] for e in record["errors"] if "connection" in e["message"]]
    assert lost and all(any(f"{role}:" in m for role in EVERY_INSTRUMENT) for m in lost), record["errors"]
    # nothing can be confirmed on a dead bench: the record says so, naming the instruments
    assert record["summary"]["safe_state_confirmed"] is False, record["summary"]
    assert {"cycler", "fixture", "safety"} <= set(record["summary"]["safe_state_unconfirmed"]), record["summary"]


@pytest.mark.timeout(300)
def test_a_silent_bms_leaves_its_standby_request_unconfirmed(tmp_path):
    # the BMS stops sending 600 s (bench time) after the bench starts: during the SOC adjustment
    bench = Bench(tmp_path / "bench", faults=["bms_silent:after=600"]).start()
    try:
        code = run_station(station_args(PLAN, bench.station_file, variant="car-400", serial="CARMUTE",
                                        workdir=tmp_path)).returncode
        record = load_record(tmp_path, "CARMUTE")
        bms = safe_state_by_instrument(record)["bms"]
        standby = [a for a in bms if "standby" in a["action"] and not a["action"].startswith("settled by")]
        assert code == 3 and record["verdict"] in ("ERROR", "ABORTED"), (code, record["reason"])
        assert standby and all(a["confirmed"] is False for a in standby), bms
        # what the silent BMS could not confirm is settled only by the independent bus reading
        settled = [a for a in bms if a["action"].startswith("settled by the independent bus reading")]
        assert settled or "bms" in record["summary"]["safe_state_unconfirmed"], record["summary"]
        # what does not depend on the BMS was still made safe, and confirmed
        cycler = safe_state_by_instrument(record)["cycler"]
        assert all(a["ok"] and a["confirmed"] for a in cycler), cycler
        state = bench.cycler()
        assert not state["output"], state
    finally:
        bench.stop()
