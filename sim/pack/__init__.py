"""Pack physics for the simulator: one ``Pack`` that every simulated instrument reads and drives.

See docs/sim_pack_api.md for the contract and ``sim.pack.model`` for the fault attributes.
"""

from sim.pack.model import Pack
from sim.pack.ocv import ocv
from sim.pack.presets import PRESETS
from sim.pack.safety import ir_apparent_resistance
from sim.pack.spec import PackSpec

__all__ = ["PRESETS", "Pack", "PackSpec", "ir_apparent_resistance", "ocv"]
