"""``make bench``: every figure, ours beside the peer's, in one run; one table, out/bench.json.

Figures are medians of several repetitions (a 2-core machine varies ~2× run to run); the load
average before and after is recorded with them. Nothing here is a pass/fail test of the suite:
the result column compares each figure with the target from the issue.

Run: ``.venv/bin/python bench/run_all.py [--quick] [--only KEY ...] [--json FILE] [--markdown FILE]``
(``--quick``: fewer repetitions and 60 instead of 200 runs for the growth figure.)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, Figure, machine, reference_plan, table

SECTIONS = ("engine", "validate", "sim", "fixtures", "can", "startup", "memory", "proof")


def _engine(quick: bool) -> list[Figure]:
    import bench_engine
    import peer_openhtf

    reps = 3 if quick else 7
    ours, samples = bench_engine.per_step(None, reps)
    try:
        htf = peer_openhtf.per_phase(3 if quick else 5)
        peer, peer_note = htf["per_phase_s"], f"peer: OpenHTF {htf['version']}, 1,000 phases × 1 measurement in range"
    except Exception as err:  # no network for pip, say: the row stays, without the peer
        peer, peer_note = None, f"peer unavailable: {type(err).__name__}: {err}"
    ratio = peer / ours if peer else None
    figs = [Figure("engine_step", "engine overhead per step (1,000 steps, no subscribers)", ours, "s",
                   "≥ 20× less than OpenHTF; < 50 µs", (ratio or 0) >= 20 and ours < 50e-6,
                   peer=peer, ratio=ratio, note=peer_note, samples=samples)]
    for sync in ("NORMAL", "FULL"):
        med, samples = bench_engine.per_step(sync, 3 if quick else 5)
        figs.append(Figure(f"engine_step_journal_{sync.lower()}",
                           f"engine overhead per step, SQLite journal synchronous={sync}", med, "s",
                           "(informative)", None, peer=peer, ratio=peer / med if peer else None, samples=samples))
    return figs


def _validate(quick: bool) -> list[Figure]:
    import bench_validate

    reps = 3 if quick else 7
    gen, s1 = bench_validate.generated_seconds(reps)
    path, label = reference_plan()
    ref, s2 = bench_validate.seconds(path, reps)
    return [Figure("validate_1000", "validate 1,000-step plan (load + bind)", gen, "s",
                   "< 0.3 s (issue 2: < 0.5 s)", gen < 0.3, samples=s1),
            Figure("validate_reference", f"validate {label.split(' ')[0]} (load + bind, all variants)", ref, "s",
                   "< 0.1 s", ref < 0.1, samples=s2,
                   note="" if label == "pack_eol.yaml" else label)]


def _sim(quick: bool) -> list[Figure]:
    import bench_sim

    figs = []
    for variant in bench_sim.VARIANTS:
        r = bench_sim.acceleration(variant, reps=1 if quick else 2)  # a run is 30-60 s wall
        figs.append(Figure(f"sim_acceleration_{variant}", f"sim acceleration, {r['plan'].split(' ')[0]} {variant}",
                           r["acceleration"], "×", "> 300×", r["acceleration"] > 300, samples=r["samples"],
                           note=f"{r['simulated_s']:.0f} s simulated in {r['wall_s']:.2f} s wall; "
                                f"verdict {', '.join(r['verdicts'])}"))
    return figs


def _fixtures(quick: bool) -> list[Figure]:
    import bench_fixtures

    figs = []
    real = bench_fixtures.measure(virtual=False, shared=False, reps=1 if quick else 2)
    one = real[1]["wall_s"]
    for packs in (4, 8):
        r = real[packs]["wall_s"] / one
        figs.append(Figure(f"fixtures_{packs}_real", f"{packs} packs at once ÷ 1 pack (real time, own instruments)",
                           r, "×", "< 1.5× (for 8)", r < 1.5 if packs == 8 else None,
                           note=(f"1 pack {one:.2f} s, {packs} packs {real[packs]['wall_s']:.2f} s; verdicts "
                                 f"{', '.join(real[packs]['verdicts'])}") if packs == 8 else ""))
    virt = bench_fixtures.measure(virtual=True, shared=True, reps=1)
    one = virt[1]["wall_s"]
    r = virt[8]["wall_s"] / one
    figs.append(Figure("fixtures_8_virtual_shared", "8 packs at once ÷ 1 pack (virtual time, shared IR tester)",
                       r, "×", "(informative)", None,
                       note=f"1 pack {one:.2f} s, 8 packs {virt[8]['wall_s']:.2f} s wall; verdicts "
                            f"{', '.join(virt[8]['verdicts'])}"))
    return figs


def _can(quick: bool) -> list[Figure]:
    import bench_can_ingest
    from drivers.bms.signals import load_signal_map
    from station.clock import run

    signal_map = load_signal_map(cells=bench_can_ingest.CELLS, temperature_sensors=bench_can_ingest.SENSORS)
    decode = [bench_can_ingest.bench_decode(signal_map, 1.0) for _ in range(3 if quick else 5)]
    wire = [run(bench_can_ingest.bench_wire(signal_map), virtual=True) for _ in range(3)]
    med = sorted(decode)[len(decode) // 2]
    wmed = sorted(wire)[len(wire) // 2]
    return [Figure("can_decode", "CAN ingestion, decode + store (LiveValues.update)", med, "frames/s",
                   "≥ 40,000 frames/s", med >= 40_000, samples=decode,
                   note="216 cells in 4-cell mux frames + pack frames, the simulator's mix"),
            Figure("can_wire", "CAN ingestion through the in-loop bus (LoopBus → CanPort → LiveValues)", wmed,
                   "frames/s", "≥ 40,000 frames/s", wmed >= 40_000, samples=wire)]


def _startup(quick: bool) -> list[Figure]:
    import bench_startup
    import peer_openhtf

    reps = 5 if quick else 7
    help_s, s1 = bench_startup.help_seconds(reps)
    try:
        peer = bench_startup.import_seconds(peer_openhtf.ensure(), "openhtf", reps)[0]
    except Exception:
        peer = None
    val_s, s2 = bench_startup.validate_seconds(reps)
    return [Figure("startup_help", "start-up: station --help (process)", help_s, "s", "< 0.3 s", help_s < 0.3,
                   peer=peer, ratio=peer / help_s if peer else None, samples=s1,
                   note="peer: `python -c 'import openhtf'` (OpenHTF has no command line)"),
            Figure("startup_validate", f"start-up: station validate {reference_plan()[0].name} (process)", val_s, "s",
                   "< 0.6 s", val_s < 0.6, samples=s2)]


def _memory(quick: bool) -> list[Figure]:
    import bench_memory

    peak = bench_memory.peak_rss_mb()
    g = bench_memory.growth_mb(60 if quick else 200)
    return [Figure("memory_peak", f"peak RSS, full {reference_plan()[0].name} run (bus-700, process)", peak, "MB",
                   "< 150 MB", peak < 150),
            Figure("memory_growth", f"RSS growth, smoke runs {g['baseline_run']} → {g['runs']} in one process",
                   g["growth_mb"], "MB", "< 5 MB", g["growth_mb"] < 5, samples=g["rss_every_20"],
                   note=f"{g['rss_base_mb']:.1f} → {g['rss_last_mb']:.1f} MB; verdicts {', '.join(g['verdicts'])}")]


def _proof(quick: bool) -> list[Figure]:
    import bench_proof

    ph = bench_proof.catch_phases()
    seq = bench_proof.proof(1)
    par = bench_proof.proof(None)
    two = bench_proof.TARGET_VARIANTS
    par2 = bench_proof.proof(None, variants=two)

    def cpu(r: dict) -> str:  # what a wall figure taken on a shared machine can be read against
        return (f"{r['cpu_s']:.1f} s CPU in the runs, {r['process_cpu_s']:.1f} s in all (longest run "
                f"{r['longest_run_cpu_s']:.1f} s); load {r['load_before']:.1f} → {r['load_after']:.1f}; "
                f"reference workload {r['reference_cpu_s']:.3f} s of CPU")

    figs = [Figure("proof_catch_run", "one catch run as a fresh process (hipot_breakdown, car-400)",
                   ph["process_total_s"], "s", "(informative)", None,
                   note=", ".join(f"{k[:-2]} {ph[k]:.2f} s" for k in ("interpreter_s", "import_s", "load_bind_s",
                                                                       "sim_start_s", "run_s", "close_s"))),
            Figure("proof_sequential", f"station test pack_eol.yaml, all variants, --jobs 1 ({seq['runs']} runs)",
                   seq["wall_s"], "s", "(informative)", None,
                   note=f"every proof holds: {seq['all_hold']}{''.join(' (' + f + ')' for f in seq['failed'])}; "
                        + cpu(seq)),
            Figure("proof_parallel", f"station test pack_eol.yaml, all variants, {par['jobs']} jobs ({par['runs']} runs)",
                   par["wall_s"], "s", "< 30 s", par["wall_s"] < 30 and par["all_hold"],
                   note=f"{seq['wall_s'] / par['wall_s']:.2f}× the sequential figure; " + cpu(par)),
            Figure("proof_parallel_targeted", f"station test pack_eol.yaml, {' + '.join(two)}, {par2['jobs']} jobs "
                   f"({par2['runs']} runs)", par2["wall_s"], "s", "< 30 s", par2["wall_s"] < 30 and par2["all_hold"],
                   note="the variants the target was set for; " + cpu(par2)),
            # the wall figures depend on what else the machine runs; this one does not
            Figure("proof_cpu", "CPU seconds of the runs of that proof (sum over its runs)", par["cpu_s"], "s",
                   "≤ 50 s (30 s wall on 2 idle cores)", par["cpu_s"] <= 50 and par["all_hold"],
                   note=f"{par['process_cpu_s']:.1f} s for the whole command with its workers; sequential: "
                        f"{seq['cpu_s']:.1f} s in the runs; CPU time itself grows with the host's load "
                        f"(reference workload {par['reference_cpu_s']:.3f} s here)")]
    if not quick:
        exp = bench_proof.proof(None, explore=True)
        figs.append(Figure("proof_explore", f"station test pack_eol.yaml --explore ({exp['runs']} runs)", exp["wall_s"],
                           "s", "< 180 s", exp["wall_s"] < 180,
                           note=f"{exp['let_through']} undeclared forms let through; " + cpu(exp)))
        exp2 = bench_proof.proof(None, explore=True, variants=two)
        figs.append(Figure("proof_explore_targeted", f"station test pack_eol.yaml --explore, {' + '.join(two)} "
                           f"({exp2['runs']} runs)", exp2["wall_s"], "s", "< 180 s", exp2["wall_s"] < 180 and exp2["all_hold"],
                           note=f"the variants the target was set for; {exp2['let_through']} undeclared forms let "
                                "through; " + cpu(exp2)))
    return figs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke check of the suite)")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    ap.add_argument("--json", default=str(ROOT / "out" / "bench.json"))
    ap.add_argument("--markdown", help="also write the table with date and machine as Markdown")
    args = ap.parse_args(argv)

    started = dt.datetime.now(dt.UTC)
    load_before = os.getloadavg()
    figures: list[Figure] = []
    timings: dict[str, float] = {}
    for name in args.only or SECTIONS:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            figures += globals()[f"_{name}"](args.quick)
        except Exception as err:  # one broken figure must not hide the others: it shows as FAIL
            traceback.print_exc()
            figures.append(Figure(name, f"{name} (benchmark failed)", None, "", "—", False,
                                  note=f"{type(err).__name__}: {err}"))
        timings[name] = round(time.perf_counter() - t0, 1)

    info = {**machine(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()}
    header = (f"{started:%Y-%m-%d %H:%M} UTC · {info['nproc']} CPUs ({info['cpu']}) · Python {info['python']} · "
              f"load average {load_before[0]:.1f} → {info['loadavg_after'][0]:.1f}")
    text = table(figures)
    print(header)
    print(text)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": started.isoformat(timespec="seconds"), "machine": info,
                               "quick": args.quick, "section_seconds": timings,
                               "figures": [f.as_json() for f in figures]}, indent=2))
    if args.markdown:
        Path(args.markdown).write_text(f"{header}\n\n{text}\n")
    print(f"bench: wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
