"""Safe file reading (issue 18 item 5): includes stay inside the plan's folder, special and
huge files are refused before reading, symlink loops are located; never content echoed, never
a traceback, bounded time and memory — for plans, libraries, configs, pack files and maps."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

from drivers.base import safefile
from drivers.base.diagnostics import InputError
from drivers.maps import mapfile
from sim.pack.catalogue import load_pack
from station.config import load_config
from station.plan.bind import bind_plan
from station.plan.loader import load_plan

from .bounds import bounded, fuzz, peak_memory

REPO = Path(__file__).resolve().parents[2]
SECRET = "SECRET-LINE-must-never-be-shown"
LIB = """\
schema_version: 1
kind: library
id: lib
version: 1.0.0
title: L
main:
  - station.log: hi
"""


def _plan(include: str) -> str:
    return f"schema_version: 1\nid: p\nversion: 1.0.0\ntitle: T\nmain:\n  - include: {include!r}\n"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """root/ (the plan's folder: lib/ok.yaml, links out, a loop) beside outside/secret.yaml."""
    top = tmp_path_factory.mktemp("safe")
    root, outside = top / "root", top / "outside"
    (root / "lib").mkdir(parents=True)
    outside.mkdir()
    (root / "lib" / "ok.yaml").write_text(LIB)
    (outside / "secret.yaml").write_text(LIB.replace("hi", SECRET) + f"# {SECRET}\n")
    (root / "lib" / "out.yaml").symlink_to(outside / "secret.yaml")
    (root / "lib" / "outdir").symlink_to(outside, target_is_directory=True)
    (root / "lib" / "loop_a.yaml").symlink_to(root / "lib" / "loop_b.yaml")
    (root / "lib" / "loop_b.yaml").symlink_to(root / "lib" / "loop_a.yaml")
    (root / "lib" / "in.yaml").symlink_to(root / "lib" / "ok.yaml")  # a link that stays inside: fine
    os.mkfifo(root / "lib" / "fifo.yaml")
    return root


def _bind(root: Path, include: str) -> list[str]:
    """The problems of a plan including ``include`` (none: it bound)."""
    plan = root / "plan.yaml"
    plan.write_text(_plan(include))
    try:
        bind_plan(load_plan(plan))
    except InputError as err:
        return [str(p) for p in err.problems]
    return []


@pytest.mark.parametrize("include, wanted", [
    ("../outside/secret.yaml", "leads outside the plan's folder"),
    ("lib/../../outside/secret.yaml", "leads outside the plan's folder"),
    ("/etc/passwd", "absolute include path"),
    ("lib/out.yaml", "through a symbolic link"),
    ("lib/outdir/secret.yaml", "through a symbolic link"),
    ("lib/loop_a.yaml", "symbolic link loop"),
    ("lib/fifo.yaml", "FIFO"),
    ("/dev/zero", "absolute include path"),
])
def test_includes_refused_with_location_and_no_content(tree, include, wanted):
    with bounded(include, 2.0):
        problems = _bind(tree, include)
    assert problems and any(wanted in p for p in problems), problems
    assert all(p.startswith(f"{tree / 'plan.yaml'}:6:") or "lib/" in p for p in problems), problems
    assert not any(SECRET in p or "root:x:" in p for p in problems), problems


def test_includes_inside_the_folder_still_work(tree):
    assert _bind(tree, "lib/ok.yaml") == []
    assert _bind(tree, "lib/in.yaml") == []


PARTS = st.sampled_from(["..", ".", "lib", "outdir", "out.yaml", "ok.yaml", "secret.yaml", "outside",
                         "loop_a.yaml", "fifo.yaml", "", "/", "~", "etc", "passwd", "root"])


@fuzz(300)
@given(parts=st.lists(PARTS, min_size=1, max_size=7), absolute=st.booleans())
def test_fuzzed_include_paths_never_escape_or_echo(tree, parts, absolute):
    include = ("/" if absolute else "") + "/".join(parts)
    if not include.strip() or include.strip() != include:
        return
    with bounded(include, 2.0):
        problems = _bind(tree, include)
    assert not any(SECRET in p for p in problems), problems
    if not problems:  # it bound: then the library it read is inside the root
        real = (tree / include).resolve()
        assert tree.resolve() in real.parents


def _special_files(tmp: Path) -> dict[str, Path]:
    fifo = tmp / "fifo.yaml"
    os.mkfifo(fifo)
    big = tmp / "big.yaml"
    with big.open("wb") as fh:  # sparse: 1 GB on paper, nothing on disk
        fh.truncate(1 << 30)
    (tmp / "loop1.yaml").symlink_to(tmp / "loop2.yaml")
    (tmp / "loop2.yaml").symlink_to(tmp / "loop1.yaml")
    return {"fifo": fifo, "zero": Path("/dev/zero"), "big": big, "loop": tmp / "loop1.yaml", "dir": tmp}


READERS = {
    "plan": lambda p: load_plan(p),
    "config": lambda p: load_config(p),
    "pack": lambda p: load_pack(p),
}


@pytest.mark.parametrize("reader", sorted(READERS))
@pytest.mark.parametrize("kind, wanted", [("fifo", "FIFO"), ("zero", "device"), ("big", "larger than"),
                                           ("loop", "symbolic link loop"), ("dir", "directory")])
def test_special_files_refused_located_bounded(tmp_path, reader, kind, wanted):
    path = _special_files(tmp_path)[kind]
    problems: list[str] = []

    def read():
        try:
            READERS[reader](path)
        except InputError as err:
            problems.extend(str(p) for p in err.problems)

    with bounded(f"{reader} {kind}", 2.0):
        peak = peak_memory(read)
    assert problems and any(f"{path}:1:1:" in p and wanted in p for p in problems), problems
    assert peak < 5_000_000, f"{reader} {kind}: {peak} bytes"


@pytest.mark.parametrize("kind, wanted", [("fifo", "FIFO"), ("zero", "device"), ("big", "larger than"),
                                           ("loop", "symbolic link loop")])
def test_map_files_refused_as_os_errors(tmp_path, kind, wanted):
    path = _special_files(tmp_path)[kind]
    with bounded(kind, 2.0), pytest.raises(OSError, match=wanted):
        mapfile.read(path)


def test_a_file_swapped_for_a_fifo_after_the_check_does_not_block(tmp_path):
    """The descriptor is opened non-blocking and checked with fstat: no hang even then."""
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    os.close(fd)
    with bounded("fifo read", 2.0), pytest.raises(safefile.UnsafeFile, match="FIFO"):
        safefile.read_bytes(fifo)


@pytest.mark.parametrize("target", ["fifo", "zero", "loop"])
def test_cli_exits_2_quickly(tmp_path, target):
    path = _special_files(tmp_path)[target]
    for argv in (["validate", str(path)], ["validate", "--station", str(path), str(REPO / "test_plans/smoke.yaml")],
                 ["test", str(path), "--db", str(tmp_path / "r.db")], ["coverage", str(path)]):
        proc = subprocess.run([sys.executable, "-m", "station.cli", *argv], capture_output=True, text=True,
                              cwd=REPO, timeout=30)
        assert proc.returncode == 2, (argv, proc.stderr)
        assert "Traceback" not in proc.stderr and f"{path}:1:1:" in proc.stderr


def test_a_plan_directory_holding_special_files_is_searched_without_blocking(tmp_path):
    """station validate/test DIR and the pytest plugin read every *.yaml they find: a FIFO, a
    device or a symlink loop among them is not a plan, and reading it must not block."""
    _special_files(tmp_path)
    (tmp_path / "smoke.yaml").write_text((REPO / "test_plans" / "smoke.yaml").read_text())
    proc = subprocess.run([sys.executable, "-m", "station.cli", "validate", str(tmp_path)], capture_output=True,
                          text=True, cwd=REPO, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert f"{tmp_path / 'smoke.yaml'}: OK" in proc.stdout and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path), "--collect-only", "-q", "-p",
                           "no:cacheprovider"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "smoke.yaml::car-400-golden" in proc.stdout


def test_a_fan_out_of_includes_is_bounded(tmp_path):
    """Twelve levels of a library including the next one twice: 4,096 loads unbounded."""
    (tmp_path / "lib").mkdir()
    for i in range(1, 13):
        (tmp_path / "lib" / f"l{i}.yaml").write_text(LIB.replace("main:\n  - station.log: hi\n",
                                                             f"main:\n  - include: l{i + 1}.yaml\n  - include: l{i + 1}.yaml\n"))
    (tmp_path / "lib" / "l13.yaml").write_text(LIB)
    with bounded("fan-out", 5.0):
        problems = _bind(tmp_path, "lib/l1.yaml")
    assert any("more than 256 includes in one plan" in p for p in problems), problems


# -- DBC files, PIN and user files, release manifest digests -------------------------------------
def _special_dbc(tmp: Path, kind: str) -> Path:
    """A '.dbc' that is a FIFO, a directory or an oversized (sparse) file."""
    from drivers.bms.signals import DBC_MAX_BYTES

    path = tmp / "bad.dbc"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    else:
        with path.open("wb") as fh:
            fh.truncate(DBC_MAX_BYTES + 1)
    return path


@pytest.mark.parametrize("kind, wanted", [("fifo", "FIFO"), ("dir", "directory"), ("big", "larger than")])
def test_a_dbc_is_read_through_the_safe_reader(tmp_path, kind, wanted):
    """cantools would open it itself (a FIFO blocks, a giant file is read whole): refused, located at the map."""
    from drivers.bms.signals import DEFAULT_MAP, SignalMapError, load_signal_map

    dbc = _special_dbc(tmp_path, kind)
    with bounded(f"dbc {kind}", 2.0), pytest.raises(SignalMapError) as info:
        peak_memory(lambda: load_signal_map(DEFAULT_MAP, dbc=dbc))
    text = str(info.value)
    assert f"{DEFAULT_MAP}:" in text and "cannot load DBC:" in text and wanted in text, text


@pytest.mark.parametrize("kind, wanted", [("fifo", "FIFO"), ("dir", "directory"), ("big", "larger than"),
                                           ("zero", "device")])
def test_a_pin_file_is_read_through_the_safe_reader(tmp_path, kind, wanted):
    from station.security.login import PIN_FILE_MAX_BYTES, read_pin

    path = {"fifo": tmp_path / "pin", "dir": tmp_path, "big": tmp_path / "pin", "zero": Path("/dev/zero")}[kind]
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "big":
        path.write_bytes(b"1" * (PIN_FILE_MAX_BYTES + 1))
    with bounded(f"pin {kind}", 2.0), pytest.raises(InputError) as info:
        read_pin(str(path), "op1")
    shown = str(info.value.problems[0])
    assert shown.startswith(f"{path}:1:1: PIN file refused:") and wanted in shown, shown
    (tmp_path / "ok").write_text("123456\nrest\n")
    assert read_pin(str(tmp_path / "ok"), "op1") == "123456"


@pytest.mark.parametrize("kind, wanted", [("fifo", "FIFO"), ("dir", "directory"), ("loop", "symbolic link loop"),
                                           ("dangling", "No such file")])
def test_a_user_file_is_read_through_the_safe_reader(tmp_path, kind, wanted):
    """A loop or a dangling link is not 'no user file' (nobody has a credential): it is refused."""
    from station.security.users import UserFile

    path = tmp_path / "users.yaml"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dir":
        path.mkdir()
    elif kind == "loop":
        path.symlink_to(tmp_path / "other.yaml")
        (tmp_path / "other.yaml").symlink_to(path)
    else:
        path.symlink_to(tmp_path / "gone.yaml")
    with bounded(f"users {kind}", 2.0), pytest.raises(InputError) as info:
        UserFile(path).load()
    shown = str(info.value.problems[0])
    assert shown.startswith(f"{path}:1:1:") and wanted in shown, shown
    assert UserFile(tmp_path / "absent.yaml").load().users == {}  # absent: nobody has a credential


@pytest.mark.parametrize("kind, wanted", [("fifo", "FIFO"), ("dir", "directory"), ("big", "larger than")])
def test_a_profile_file_is_digested_through_the_safe_reader(tmp_path, kind, wanted, monkeypatch):
    """The release manifest digests the files a station's instruments name: a FIFO named as the
    DBC would hang the digest; it is refused at the option that names it."""
    from station.plan.loader import load_plan
    from station.security import manifest as mf

    monkeypatch.setattr(mf, "PROFILE_MAX_BYTES", 1000)
    bad = _special_dbc(tmp_path, "big" if kind == "big" else kind)
    if kind == "big":
        bad.unlink()
        bad.write_bytes(b"x" * 1001)
    config = tmp_path / "station.yaml"
    config.write_text((REPO / "station" / "sim_station.yaml").read_text().replace(
        'uds: {tx_id: 0x7E4, rx_id: 0x7EC}}}', 'dbc: bad.dbc, uds: {tx_id: 0x7E4, rx_id: 0x7EC}}}', 1)
        .replace("../test_plans/", f"{REPO}/test_plans/"))
    cfg = load_config(config)
    bound = bind_plan(load_plan(REPO / "test_plans" / "smoke.yaml"))
    with bounded(f"manifest {kind}", 2.0), pytest.raises(InputError) as info:
        mf.release_digest(cfg, bound)
    shown = str(info.value.problems[0])
    line = next(i for i, text in enumerate(config.read_text().splitlines(), 1) if "dbc: bad.dbc" in text)
    assert shown.startswith(f"{config}:{line}:") and "profile file refused for the release manifest" in shown, shown
    assert wanted in shown
