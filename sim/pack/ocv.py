"""Open-circuit voltage of one cell versus state of charge, per chemistry.

Tables are typical shapes, not one maker's cell: LFP has the flat 3.2-3.35 V plateau between
2.5 V and 3.65 V; NMC slopes from 3.0 V to 4.2 V. Points beyond 0..1 SOC are steep tails so
an overcharged or overdischarged element keeps a monotonic, finite voltage.
"""

from __future__ import annotations

import numpy as np

try:  # np.interp's compiled core: its Python wrapper's checks made a call 19.3k instructions, not 13.6k
    from numpy._core.multiarray import interp as _interp
except ImportError:  # another numpy layout: the public function computes the same
    _interp = np.interp

_SOC = {
    "LFP": [-0.05, 0.0, 0.02, 0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 0.95, 0.98, 1.0, 1.05],
    "NMC": [-0.05, 0.0, 0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 1.0, 1.05],
}
_VOLTS = {
    "LFP": [2.0, 2.50, 2.90, 3.10, 3.20, 3.24, 3.26, 3.28, 3.29, 3.30, 3.31, 3.32, 3.34, 3.36, 3.45, 3.65, 4.2],
    "NMC": [2.5, 3.00, 3.35, 3.45, 3.55, 3.61, 3.66, 3.72, 3.80, 3.88, 3.97, 4.07, 4.20, 4.6],
}

#: chemistry -> (soc points, volts), both strictly increasing float arrays
OCV_TABLES: dict[str, tuple[np.ndarray, np.ndarray]] = {
    chem: (np.asarray(_SOC[chem], dtype=float), np.asarray(_VOLTS[chem], dtype=float))
    for chem in _SOC
}


def ocv(chemistry: str, soc):
    """Cell OCV (V) at ``soc`` (0..1, scalar or array), linear between table points."""
    xs, ys = OCV_TABLES[chemistry]
    return _interp(soc, xs, ys)


def ocv_slope(chemistry: str, soc):
    """dOCV/dSOC (V per unit SOC) of the segment each ``soc`` lies in."""
    xs, ys = OCV_TABLES[chemistry]
    slopes = np.diff(ys) / np.diff(xs)
    idx = np.clip(np.searchsorted(xs, soc, side="right") - 1, 0, len(slopes) - 1)
    return slopes[idx]
