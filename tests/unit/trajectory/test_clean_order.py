"""clean's ordering shortcut (a feed in time order with repeated instants sorts only its ties)
gives exactly the full sort's order: by time, then accuracy (unknown last), latitude, longitude."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.trajectory.domain.clean import _order
from services.trajectory.domain.model import Track

pytestmark = pytest.mark.unit


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.booleans())
def test_the_shortcut_orders_as_the_full_sort(seed: int, n: int, in_time_order: bool) -> None:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, max(n // 3, 1), n)).astype(np.float64) * 5.0  # many repeated instants
    if not in_time_order:
        t = rng.permutation(t)
    acc = rng.choice([3.0, 5.0, 5.0, np.nan, 20.0], n)
    lat = rng.choice([30.0, 30.0001, 30.0002], n)
    lon = rng.choice([120.0, 120.0001], n)
    tr = Track(t, lat, lon, acc)
    full = np.lexsort((lon, lat, np.where(np.isnan(acc), np.inf, acc), t))
    got = _order(tr)
    for col in (t, acc, lat, lon):  # the same sequence of fixes (equal fixes may swap places)
        np.testing.assert_array_equal(col[got], col[full])
    assert sorted(got.tolist()) == list(range(n))
