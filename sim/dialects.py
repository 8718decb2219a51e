"""Which simulated peer speaks a driver's dialect, by the station config's driver key.

The bench serves one shared safety tester; the station config says which one by the
``driver:`` of its safety instrument, and this table turns that key into the peer that speaks
the same wire dialect. Adding a dialect is one line here (plus its peer module), never an
edit of the bench.
"""

from __future__ import annotations

import importlib
from typing import Any

# driver key -> "module:Class" of its simulated peer, built as Class(pack, wiring).
SAFETY_PEERS: dict[str, str] = {
    "chroma_19032": "sim.instruments.chroma_19032:SimChroma19032",
    "kikusui_tos9300": "sim.instruments.kikusui_tos9300:SimKikusuiTos9300",
}
DEFAULT_SAFETY = "chroma_19032"


class NoSimulatedPeer(ValueError):
    """The station config names a driver the simulator has no peer for."""


def safety_peer(driver: str, pack: Any, wiring: Any) -> Any:
    """The simulated safety tester for ``driver`` on ``pack``/``wiring`` (built, not started)."""
    target = SAFETY_PEERS.get(driver)
    if target is None:
        raise NoSimulatedPeer(f"no simulated safety tester speaks driver {driver!r}; "
                              f"simulated: {', '.join(sorted(SAFETY_PEERS))}")
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)(pack, wiring)
