"""Cell parameter tables: the per-element (array) path gives what a plain bilinear
interpolation gives element by element, at the edges, past them and with NaN."""

from __future__ import annotations

import bisect
import math

import numpy as np
import pytest

from sim.pack.table import Table

SOC = (0.0, 0.1, 0.3, 0.6, 1.0)
TEMPS = (0.0, 10.0, 25.0, 40.0)
ROWS = tuple(tuple(1e-3 * (1 + r) * (1 + 0.3 * k) for k in range(len(SOC))) for r in range(len(TEMPS)))


def _lerp_hold(xs, ys, x):
    """Linear in x, holding the end values past either end (as a cell's R0 table does)."""
    if math.isnan(x):
        return math.nan
    x = min(max(x, xs[0]), xs[-1])
    j = min(max(bisect.bisect_right(xs, x) - 1, 0), len(xs) - 2)
    u = (x - xs[j]) / (xs[j + 1] - xs[j])
    return ys[j] * (1 - u) + ys[j + 1] * u


def _reference(soc, temp):
    if math.isnan(temp):
        return math.nan
    t = min(max(temp, TEMPS[0]), TEMPS[-1])
    i = min(max(bisect.bisect_right(TEMPS, t) - 1, 0), len(TEMPS) - 2)
    w = (t - TEMPS[i]) / (TEMPS[i + 1] - TEMPS[i])
    return _lerp_hold(SOC, ROWS[i], soc) * (1 - w) + _lerp_hold(SOC, ROWS[i + 1], soc) * w


@pytest.mark.parametrize("seed", range(5))
def test_array_path_matches_a_plain_bilinear_per_element(seed):
    rng = np.random.default_rng(seed)
    table = Table(SOC, ROWS, temps=TEMPS)
    soc = rng.uniform(-0.5, 1.5, 192)
    temp = rng.uniform(-20.0, 60.0, 192)
    soc[:4] = [0.0, 1.0, 0.3, math.nan]
    temp[4:8] = [0.0, 40.0, 25.0, math.nan]
    got = table(soc, temp)
    want = [_reference(s, t) for s, t in zip(soc, temp, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
    # one temperature for every element, and scalars, agree with the same reference
    np.testing.assert_allclose(table(soc, 17.0), [_reference(s, 17.0) for s in soc], rtol=1e-12, equal_nan=True)
    for s, t in zip(soc[:12], temp[:12], strict=True):
        assert table.at(s, t) == pytest.approx(_reference(s, t), rel=1e-12, nan_ok=True)


def test_extrapolating_table_continues_its_end_segments_per_element():
    ocv = Table((0.0, 0.5, 1.0), ((3.0, 3.6, 4.2), (3.1, 3.7, 4.3)), temps=(0.0, 40.0), extrapolate=True)
    got = ocv(np.array([-0.1, 1.1, 0.25]), np.array([0.0, 40.0, 20.0]))
    # past full at 40 degC: 4.3 + 0.1 * (4.3 - 3.7) / 0.5; below empty at 0 degC: 3.0 - 0.1 * 1.2
    np.testing.assert_allclose(got, [3.0 - 0.12, 4.3 + 0.12, (3.3 + 3.4) / 2], rtol=1e-12)
