"""_spikes' speed test worked out for the candidate fixes only (clean._fast) is the whole track's."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.trajectory.domain.clean import _fast
from services.trajectory.domain.model import Params

pytestmark = pytest.mark.unit


def _whole(tt, x, y, params):
    """The speed test over the whole track, as _spikes worked it out before."""
    m = tt.shape[0]
    step = np.zeros(m)
    step[1:] = np.hypot(np.diff(x), np.diff(y))
    d_out = np.append(step[1:], np.inf)
    dt = np.full(m, np.inf)
    dt[1:] = np.maximum(np.diff(tt), 0.5)
    v_in = step / dt
    v_out = np.append(v_in[1:], 0.0)
    v_in = np.where(np.arange(m) == 0, v_out, v_in)
    v_out = np.where(np.arange(m) == m - 1, v_in, v_out)
    return (np.minimum(v_in, v_out) > params.max_speed_mps) & (np.minimum(step, d_out) > 100.0)


@settings(max_examples=300, deadline=None)
@given(st.integers(3, 200), st.integers(0, 2**32 - 1))
def test_fast_of_the_candidates_is_the_whole_tracks(m, seed):
    rng = np.random.default_rng(seed)
    tt = 1.7e9 + np.cumsum(rng.choice([0.0, 0.3, 1.0, 5.0, 30.0], size=m))
    jump = rng.choice([1.0, 50.0, 400.0, 5000.0], size=(m, 1))
    xy = np.cumsum(rng.normal(size=(m, 2)) * jump, axis=0)
    x, y = xy[:, 0].copy(), xy[:, 1].copy()
    params = Params()
    want = _whole(tt, x, y, params)
    c = np.flatnonzero(rng.random(m) < 0.5)
    c = np.unique(np.concatenate([c, [0, m - 1]]))
    assert np.array_equal(_fast(c, tt, np.diff(x), np.diff(y), params), want[c])
