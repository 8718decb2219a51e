"""A generated station config with N fixtures, for the parallel-fixture and memory benchmarks.

Built from ``station/sim_station.yaml``: fixture F1's instrument block is copied to F1..Fn
(placeholders renamed, pack presets alternating car-400 / bus-700); the shared safety tester
stays shared, as on a real line with one IR/hipot tester behind a relay matrix. Plan and result
paths point into the repo and the given directory.
"""

from __future__ import annotations

import copy
from pathlib import Path

from ruamel.yaml import YAML

from common import PLANS, ROOT

PRESETS = ("car-400", "bus-700")
DWELL = "5 s"  # stands in for the bond + insulation dwell of the smoke plan in the unshared plan


def preset_of(index: int) -> str:
    """Pack preset (and plan variant) of fixture F<index>: car-400, bus-700, car-400, ..."""
    return PRESETS[(index - 1) % len(PRESETS)]


def write_station(directory: Path, fixtures: int) -> Path:
    """Write ``station.yaml`` with ``fixtures`` fixtures into ``directory``; return its path."""
    yaml = YAML(typ="rt")
    data = yaml.load((ROOT / "station" / "sim_station.yaml").read_text())
    template = data["fixtures"]["F1"]
    out = {}
    for i in range(1, fixtures + 1):
        name = f"F{i}"
        block = copy.deepcopy(template)
        block["sim_preset"] = preset_of(i)
        for inst in block["instruments"].values():
            if isinstance(inst, str):
                continue
            inst["resource"] = inst["resource"].replace("{F1.", "{" + name + ".")
            for key, value in list(inst.get("options", {}).items()):
                if isinstance(value, str):
                    inst["options"][key] = value.replace("{F1.", "{" + name + ".")
        out[name] = block
    data["fixtures"] = out
    for product in data.get("products", []):
        product["plan"] = str(PLANS / Path(product["plan"]).name)
    data["results"] = {"db": str(directory / "station.db")}
    path = directory / "station.yaml"
    with path.open("w") as fh:
        yaml.dump(data, fh)
    return path


def write_unshared_plan(directory: Path) -> Path:
    """The smoke plan without its steps on the shared safety tester (bond, insulation).

    What is left (interlocks, clamp, LV power, BMS wake, pack voltage, teardown) uses only the
    fixture's own instruments, so N packs at once can overlap completely in time; a ``DWELL``
    wait stands in for the removed physical time.
    """
    yaml = YAML(typ="rt")
    data = yaml.load((PLANS / "smoke.yaml").read_text())
    data["id"] = "smoke-unshared"
    data["instruments"] = [r for r in data["instruments"] if r != "safety"]
    data["main"] = [s for s in data["main"] if s.get("id") not in ("bond", "isolation")]
    data["main"].insert(0, {"id": "dwell", "station.wait": DWELL})
    path = directory / "smoke_unshared.yaml"
    with path.open("w") as fh:
        yaml.dump(data, fh)
    return path
