"""mark_drift's shortcuts give what the plain computation gives: hypot against a radius decided by
the sum of squares away from the edge (motion.beyond), and the runs wide enough to hold an
excursion found all at once (motion._wide_runs)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.trajectory.domain.motion import _sliding, _stays_put, _too_far, _wide_runs, beyond

pytestmark = pytest.mark.unit


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([25.0, 50.0, 7.3]))
def testbeyond_is_hypot_against_r(seed, r):
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
    outside, inside = beyond(dx.reshape(-1, 5), dy.reshape(-1, 5), r)
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


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300), st.integers(1, 100), st.integers(0, 2**32 - 1))
def test_sliding_max_and_min_are_the_windows(n, w, seed):
    v = np.random.default_rng(seed).normal(size=n)
    for op, f in ((np.maximum, np.max), (np.minimum, np.min)):
        assert np.array_equal(_sliding(v, w, op), np.array([f(v[p:p + w]) for p in range(n)]))


@settings(max_examples=200, deadline=None)
@given(st.integers(3, 300), st.integers(0, 2**32 - 1), st.sampled_from([0.5, 3.0, 10.0]))
def test_a_sample_that_stays_put_never_leaves_and_too_far_is_nanmax(n, seed, wander):
    rng = np.random.default_rng(seed)
    seen = rng.random(n) > 0.2
    x = np.where(seen, np.cumsum(rng.normal(0, wander, n)), np.nan)
    y = np.where(seen, np.cumsum(rng.normal(0, wander, n)), np.nan)
    w, r = 12, 25.0
    cand = np.flatnonzero(seen)
    put = _stays_put(cand, w, x, y, seen, r)
    with np.errstate(invalid="ignore"):
        for c, p in zip(cand.tolist(), put.tolist(), strict=True):
            if p:
                assert not (np.hypot(x[c:c + w + 1] - x[c], y[c:c + w + 1] - y[c]) > r).any()
    # excursions from c, last seen at s0 >= c, back at e: a seen sample in (s0, e)
    s0 = np.array([c + int(rng.integers(0, 3)) for c in cand.tolist()], dtype=np.intp)
    e = s0 + 2 + rng.integers(0, w - 2, size=cand.size)
    ok = (e < n)
    c, s0, e = cand[ok], s0[ok], e[ok]
    ok = np.array([seen[a + 1:b].any() for a, b in zip(s0.tolist(), e.tolist(), strict=True)], dtype=bool)
    c, s0, e = c[ok], s0[ok], e[ok]
    want = [float(np.nanmax(np.hypot(x[a + 1:b] - x[k], y[a + 1:b] - y[k]))) > 30.0
            for k, a, b in zip(c.tolist(), s0.tolist(), e.tolist(), strict=True)]
    assert _too_far(c, s0, e, w, x, y, 30.0).tolist() == want
