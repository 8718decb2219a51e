"""Driver registry: the short keys of a station config (``driver: itech_it6000``) to classes.

Every driver, built-in or a site's, is an entry point of group ``eol_station.drivers``
(``drivers/plugins.py``): the built-ins are declared in this project's ``pyproject.toml``, a
site driver in its own package's::

    [project.entry-points."eol_station.drivers"]
    acme_cycler = "acme_station.cycler:AcmeCycler"

Nothing is imported until a key is resolved, so ``station --help`` stays fast.
"""

from __future__ import annotations

from drivers import plugins
from drivers.errors import UnknownDriverError

ENTRY_POINT_GROUP = plugins.DRIVERS


def available() -> dict[str, str]:
    """Every known key (built-in and site) -> "module:Class"."""
    return {name: p.target for name, p in plugins.plugins(ENTRY_POINT_GROUP).items()}


def builtin() -> dict[str, str]:
    """The keys this project declares -> "module:Class", by key."""
    return {name: p.target for name, p in plugins.plugins(ENTRY_POINT_GROUP).items() if p.builtin}


def driver_class(key: str) -> type:
    """Resolve a driver key to its class; an unknown key lists the valid ones."""
    found = plugins.plugins(ENTRY_POINT_GROUP)
    plugin = found.get(key)
    if plugin is None:
        raise UnknownDriverError(f"unknown driver {key!r}; valid keys: {', '.join(sorted(found))}")
    cls = plugin.load()
    if not isinstance(cls, type):
        raise plugins.PluginError(plugin.where, f"{ENTRY_POINT_GROUP} entry point {key} = {plugin.target!r} "
                                                f"(from {plugin.dist}) is not a class")
    return cls
