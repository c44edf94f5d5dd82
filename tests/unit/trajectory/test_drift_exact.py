"""mark_drift's shortcuts give what the plain computation gives: hypot against a radius decided by
the sum of squares away from the edge (motion._beyond), and the runs wide enough to hold an
excursion found all at once (motion._wide_runs)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.trajectory.domain.motion import _beyond, _wide_runs

pytestmark = pytest.mark.unit


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([25.0, 50.0, 7.3]))
def test_beyond_is_hypot_against_r(seed, r):
    rng = np.random.default_rng(seed)
    n = 2000
    theta = rng.uniform(0, 2 * np.pi, n)
    # right on the circle (to the last ulps), near it, and anywhere; some NaN
    rad = np.concatenate([np.full(n // 4, r), r * (1 + rng.normal(0, 1e-12, n // 4)),
                          r * (1 + rng.normal(0, 1e-8, n // 4)), rng.uniform(0, 3 * r, n - 3 * (n // 4))])
    dx, dy = rad * np.cos(theta), rad * np.sin(theta)
    dx[rng.random(n) < 0.05] = np.nan
    dx = np.concatenate([dx, [15.0, 0.0, r, -r, 0.0]])
    dy = np.concatenate([dy, [20.0, r, 0.0, 0.0, -r]])
    outside, inside = _beyond(dx.reshape(-1, 5), dy.reshape(-1, 5), r)
    with np.errstate(invalid="ignore"):
        d = np.hypot(dx, dy)
        assert np.array_equal(outside.ravel(), d > r)
        assert np.array_equal(inside.ravel(), d <= r)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300), st.integers(0, 2**32 - 1))
def test_wide_runs_are_those_of_the_run_by_run_test(n, seed):
    rng = np.random.default_rng(seed)
    seen = rng.random(n) > 0.2
    x = np.where(seen, np.cumsum(rng.normal(0, 6, n)), np.nan)
    y = np.where(seen, np.cumsum(rng.normal(0, 6, n)), np.nan)
    free = rng.random(n) > 0.1
    edges = np.diff(np.concatenate([[0], free.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    want = []
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        sx, sy = x[a:b][seen[a:b]], y[a:b][seen[a:b]]
        if sx.size < 3 or np.hypot(np.ptp(sx), np.ptp(sy)) <= 25.0:
            continue
        want.append((a, b))
    assert _wide_runs(starts, ends, x, y, seen, 25.0) == want
