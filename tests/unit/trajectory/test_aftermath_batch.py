"""find_aftermath works out the first window of _stay_end for all its candidates at once
(aftermath._window_ends), and _stay_end grows that window: the same answers, float for float, as
one plain pass over the rest of the day per candidate (``plain_stay_end``, the rule as first written)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.trajectory.domain.aftermath import LEFT_S, _stay_end, _window_ends
from services.trajectory.domain.model import Params
from services.trajectory.domain.motion import Grid
from shared.geo import EARTH_RADIUS_M, local_xy_m

pytestmark = pytest.mark.unit

K = np.pi / 180.0 * EARTH_RADIUS_M


def plain_stay_end(grid: Grid, i: int, centre: tuple[float, float], params: Params, until: float,
                   step: float) -> float:
    """_stay_end as one pass over everything up to ``until``."""
    j_max = int(np.searchsorted(grid.t, until, side="left")) if math.isfinite(until) else len(grid)
    g_t, g_lat, g_lon, g_known = grid.t[i:j_max], grid.lat[i:j_max], grid.lon[i:j_max], grid.known[i:j_max]
    if g_t.size == 0:
        return float(grid.t[i])
    x, y = local_xy_m(g_lat, g_lon, centre[0], centre[1])
    with np.errstate(invalid="ignore"):
        near = g_known & ~(x * x + y * y > params.dwell_radius_m**2)
    w = max(1, int(round(LEFT_S / step)))
    near_ahead = np.convolve(near.astype(np.int32)[::-1], np.ones(w, dtype=np.int32), mode="full")[: near.size][::-1]
    known_ahead = np.convolve(g_known.astype(np.int32)[::-1], np.ones(w, dtype=np.int32), mode="full")[: near.size][::-1]
    away = g_known & (near_ahead == 0) & (known_ahead > 0)
    stop = int(np.argmax(away)) if away.any() else g_t.size
    if stop == g_t.size and j_max < len(grid):
        return float(until)
    seen = np.flatnonzero(g_known[:stop])
    return float(g_t[seen[-1]]) + step if seen.size else float(grid.t[i])


@st.composite
def grids(draw: st.DrawFn) -> tuple[Grid, float]:
    n = draw(st.integers(2, 600))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t = 1.7e9 + 5.0 * np.arange(n)
    # stays and rides: steps of 0, a few metres or tens of metres; outages of varying length
    mix = draw(st.sampled_from([(0.3, 0.4, 0.2, 0.1), (0.9, 0.06, 0.02, 0.02), (0.97, 0.0, 0.0, 0.03)]))
    step = rng.choice([0.0, 2.0, 8.0, 60.0], size=(n, 1), p=mix) * rng.normal(size=(n, 2))
    xy = np.cumsum(step, axis=0)
    known = rng.random(n) > draw(st.sampled_from([0.0, 0.1, 0.5]))
    lat = np.where(known, 31.2 + xy[:, 1] / K, np.nan)
    lon = np.where(known, 121.4 + xy[:, 0] / (K * np.cos(np.radians(31.2))), np.nan)
    z = np.zeros(n, dtype=bool)
    until = draw(st.one_of(st.just(float("inf")), st.floats(float(t[0]), float(t[-1]) + 100.0)))
    return Grid(t, lat, lon, known, z, z), until


@settings(max_examples=300, deadline=None)
@given(grids())
def test_the_first_window_of_every_candidate_at_once_is_each_ones(g):
    grid, until = g
    params = Params()
    cand = np.flatnonzero(grid.known)
    quick, end = _window_ends(grid, cand, grid.lat[cand], grid.lon[cand], params, until, 5.0)
    for k, i in enumerate(cand.tolist()):
        if grid.t[i] >= until:
            continue  # find_aftermath never asks for these
        one = plain_stay_end(grid, i, (float(grid.lat[i]), float(grid.lon[i])), params, until, 5.0)
        assert _stay_end(grid, i, (float(grid.lat[i]), float(grid.lon[i])), params, until, 5.0) == one
        if quick[k]:
            assert float(end[k]) == one
