"""Plug-ins declared as entry points: this project's own and a site package's, found alike.

The built-in drivers and actions are declared in this project's ``pyproject.toml`` under the
groups a site package uses for its own::

    [project.entry-points."eol_station.drivers"]
    acme_cycler = "acme_station.cycler:AcmeCycler"

    [project.entry-points."eol_station.actions"]
    acme_torque = "acme_station.torque:ACTIONS"

so a site adds a driver or actions by installing its package, without an edit here. Nothing is
imported until it is asked for. A name two distributions declare, or one that cannot be loaded,
is an ``InputError`` naming the entry point and the distribution, never a silent choice.
"""

from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from drivers.base.diagnostics import InputError, Problem

HOME = "eol-station"  # this project's distribution: it declares the built-ins
DRIVERS = "eol_station.drivers"
ACTIONS = "eol_station.actions"


class PluginError(InputError):
    """An entry point that cannot be used: a clash, an import that fails, a stale install."""

    def __init__(self, where: str, message: str, line: int = 1) -> None:
        super().__init__([Problem(where, line, 1, message)])


@dataclass(frozen=True)
class Plugin:
    """One entry point of a group: ``name = "module:attribute"``, declared by ``dist``."""

    group: str
    name: str
    target: str  # "module:attribute"
    dist: str  # the declaring distribution's name ("eol-station" for the built-ins)
    where: str  # the file declaring it (its entry_points.txt), for messages

    @property
    def builtin(self) -> bool:
        return _normal(self.dist) == _normal(HOME)

    @property
    def line(self) -> int:
        """The line of ``where`` declaring this entry point (1 when it cannot be found)."""
        try:
            text = Path(self.where).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return 1
        section = ""
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1].strip()
            elif section == self.group and line.partition("=")[0].strip() == self.name:
                return number
        return 1

    def load(self) -> Any:
        """Import the target; a failure is a ``PluginError`` naming the entry point."""
        module, _, attribute = self.target.partition(":")
        try:
            found: Any = importlib.import_module(module)
            for part in filter(None, attribute.split(".")):
                found = getattr(found, part)
        except Exception as err:  # a site package's bug or missing dependency: named, not a traceback
            raise PluginError(self.where, f"{self.group} entry point {self.name} = {self.target!r} (from "
                                          f"{self.dist}) cannot be loaded: {type(err).__name__}: {err}",
                              self.line) from err
        return found


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _declared_in(dist: metadata.Distribution | None) -> str:
    for file in (dist.files or ()) if dist is not None else ():
        if file.name == "entry_points.txt":
            return str(Path(str(file.locate())))
    return dist.metadata["Name"] if dist is not None else "entry points"


@functools.cache
def plugins(group: str) -> dict[str, Plugin]:
    """Every entry point of ``group`` by name: the built-ins first, each part sorted by name.

    Read once per process. Raises ``PluginError`` when two distributions declare one name, or
    when this project's own install declares none (its metadata predates ``pyproject.toml``).
    """
    found: dict[str, Plugin] = {}
    for ep in metadata.entry_points(group=group):
        dist = ep.dist
        plugin = Plugin(group, ep.name, ep.value, dist.metadata["Name"] if dist is not None else "?",
                        _declared_in(dist))
        other = found.get(ep.name)
        if other is not None and other.target != plugin.target:
            raise PluginError(plugin.where, f"{group} entry point {ep.name!r} is declared by {plugin.dist} "
                                            f"({plugin.target}) and by {other.dist} ({other.target}): "
                                            "rename one", plugin.line)
        found[ep.name] = plugin
    if not any(p.builtin for p in found.values()):
        raise PluginError("pyproject.toml", f"the installed {HOME} declares no {group} entry points: its "
                                            "metadata is older than pyproject.toml; reinstall it "
                                            "(make .venv/.installed, or pip install -e .)")
    return dict(sorted(found.items(), key=lambda item: (not item[1].builtin, item[0])))
