"""``station sim serve --write-station FILE``: a station config for the served endpoints, written
whole once they are up, that the station accepts as a hardware config at the bench's speed."""

from __future__ import annotations

import asyncio
import io

from sim.serve import check_arguments, serve
from sim.station_file import write_atomically
from station.cli import main
from station.config import load_config
from tests.hardware.bench import ROOT


def test_the_written_config_names_every_served_endpoint_and_the_bench_speed(tmp_path, capsys):
    target = tmp_path / "bench.yaml"
    seen: dict = {}

    async def run():
        out, err, stop = io.StringIO(), io.StringIO(), asyncio.Event()
        task = asyncio.create_task(serve("bus-700", [], speed=25, out=out, err=err, stop=stop, station_file=target))
        while out.getvalue().count("\n") < 7:  # the endpoint lines come after the file
            assert not task.done(), err.getvalue()
            await asyncio.sleep(0.01)
        seen["existed"] = target.exists()
        stop.set()
        return await task, out.getvalue()

    code, out = asyncio.run(run())
    assert code == 0 and seen["existed"]
    loaded = load_config(target)
    cfg = loaded.config
    assert (cfg.mode, cfg.time_scale) == ("development", 25.0)
    roles = loaded.instruments_for("F1")
    assert set(roles) == {"safety", "fixture", "cycler", "dmm", "leak", "bms"}
    lines = {line.split()[0]: line.split() for line in out.splitlines()}
    assert roles["cycler"][1].resource == lines["cycler-scpi"][2]
    assert roles["dmm"][1].resource == lines["dmm-scpi"][2]
    assert roles["safety"][1].resource == lines["safety-scpi"][2]
    assert roles["fixture"][1].resource == lines["fixture-modbus"][2]
    assert roles["leak"][1].resource == lines["leak-serial"][1]
    assert roles["bms"][1].resource == lines["bms-can"][-1]
    assert roles["bms"][1].options["cells"] == 216  # the served pack's, not a default
    assert [p.name for p in tmp_path.iterdir()] == ["bench.yaml"]  # no temporary file left
    plan = str(ROOT / "test_plans" / "pack_eol.yaml")
    assert main(["validate", "--station", str(target), plan, "--variant", "bus-700"]) == 0, capsys.readouterr().err


def test_a_missing_directory_is_a_usage_error_before_anything_starts(tmp_path):
    _faults, problems = check_arguments("car-400", [], 10.0, str(tmp_path / "nowhere" / "bench.yaml"))
    assert problems == [f"--write-station {tmp_path / 'nowhere' / 'bench.yaml'}: no such directory"]
    _faults, problems = check_arguments("car-400", [], 10.0, str(tmp_path))
    assert problems == [f"--write-station {tmp_path}: is a directory"]


def test_an_atomic_write_replaces_the_file_whole(tmp_path):
    target = tmp_path / "bench.yaml"
    target.write_text("old: stale ports\n")
    write_atomically(target, "schema_version: 1\n")
    assert target.read_text() == "schema_version: 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["bench.yaml"]
