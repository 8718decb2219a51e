"""Readings as text: fixed decimals, and zero never printed with a minus sign."""

from __future__ import annotations

import pytest

from drivers.base.readout import fixed


@pytest.mark.parametrize("value, decimals, text", [
    (-0.04, 1, "0.0"), (-0.0, 1, "0.0"), (0.04, 1, "0.0"), (-0.05000001, 1, "-0.1"),
    (-0.004, 2, "0.00"), (288.04, 1, "288.0"), (-61.0, 1, "-61.0"), (3, 2, "3.00"),
])
def test_fixed(value, decimals, text):
    assert fixed(value, decimals) == text
