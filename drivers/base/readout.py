"""A reading as text for a person: fixed decimals, and zero printed as zero.

A DMM on a discharged bus reads a few microvolts either side of zero; ``f"{-0.00004:.1f}"`` is
``"-0.0"``, which reads as a fault to whoever sees it.
"""

from __future__ import annotations


def fixed(value: float, decimals: int = 1) -> str:
    """``value`` rounded to ``decimals`` places; ``fixed(-0.04)`` is ``"0.0"``, never ``"-0.0"``."""
    rounded = round(float(value), decimals)
    return f"{rounded + 0.0:.{decimals}f}"  # -0.0 + 0.0 is +0.0 (IEEE 754)
