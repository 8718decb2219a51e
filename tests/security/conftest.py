"""A station directory in tmp_path: the simulated station's config (comments and all) with a
copy of the smoke plan beside it, so tests can edit, release and run it without touching the repo."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from station.config import SIM_CONFIG

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "test_plans" / "smoke.yaml"


def write_station(folder: Path, *, mode: str = "development", released: dict[str, str] | None = None,
                  extra: str = "") -> Path:
    """Copy sim_station.yaml into ``folder`` with plan paths made absolute (``extra``: more
    top-level YAML); return its path."""
    text = SIM_CONFIG.read_text(encoding="utf-8").split("\nreleased:")[0]  # the tests set their own
    text = text.replace("../test_plans/", f"{REPO / 'test_plans'}/").replace("mode: development", f"mode: {mode}")
    text = text.replace("db: ../results/station.db", f"db: {folder / 'results' / 'station.db'}")
    if released:
        text += "\nreleased:\n" + "".join(f"  {k}: {v}\n" for k, v in released.items())
    path = folder / "station.yaml"
    path.write_text(text + extra, encoding="utf-8")
    return path


PINS = {"op1": "1357", "eng1": "8642", "admin": "2468"}


@dataclass
class Production:
    """A production station in a folder: config, user file with PINs, the admin's signing key."""

    folder: Path
    config: Path
    key: Path
    public_key: str

    def auth(self, who: str, pin: str | None = None):
        from station.config import load_config
        from station.security.audit import AuditLog, audit_path
        from station.security.users import authenticate

        cfg = load_config(self.config)
        return authenticate(cfg, AuditLog(audit_path(cfg)), who, pin=pin or PINS[who])

    def release(self, plan: Path) -> str:
        from station.security.release import release_plan

        return release_plan(self.config, plan, "admin", key=self.key, auth=self.auth("admin"))

    def audit(self):
        from station.config import load_config
        from station.security.audit import AuditLog, audit_path

        return AuditLog(audit_path(load_config(self.config)))

    def refusals(self, what: str) -> list[dict]:
        return [e for e in self.audit().entries() if e["kind"] == "refusal" and e["fields"]["what"] == what]


def production_station(folder: Path, *, release: tuple[str, ...] = ("plans/smoke.yaml",)) -> Production:
    """A production station whose admin holds a trusted key and whose users have PINs;
    ``release`` plans (relative to ``folder``) are released with a signature."""
    from station.security.signing import new_private_key
    from station.security.users import UserFile

    key = folder / "admin.key"
    public = new_private_key(key)
    users = UserFile(folder / "users.yaml").load()
    for who, pin in PINS.items():
        users.set(who, "pin", pin)
    cfg = write_station(folder, mode="production", extra=(
        f"\ntrusted_keys:\n  - {{id: admin-2026, owner: admin, public_key: \"{public}\"}}\nusers_file: users.yaml\n"))
    prod = Production(folder, cfg, key, public)
    for plan in release:
        prod.release(folder / plan)
    return prod


@pytest.fixture
def station_dir(tmp_path: Path) -> Path:
    (tmp_path / "plans").mkdir()
    shutil.copy(SMOKE, tmp_path / "plans" / "smoke.yaml")
    return tmp_path
