"""passes.choose: the time check's passes sought in a window around the reported time give, float
for float, the answer the whole day gives (the proof is choose's docstring; this checks it on
random tracks that wander in and out of the radius, with outages, near the window's edges)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.trajectory.domain.model import Params
from services.trajectory.domain.passes import WINDOWS_S, Choice, Pass, choose, line_distance
from shared.geo import EARTH_RADIUS_M

pytestmark = pytest.mark.unit

LAT0, LON0 = 31.23, 121.47
K = np.pi / 180.0 * EARTH_RADIUS_M
NARROW = (900.0, 3600.0, 14400.0)  # a first window of 15 min, for the stories below


def _same_pass(a: Pass | None, b: Pass | None) -> None:
    assert (a is None) == (b is None)
    if a is None or b is None:
        return
    assert (a.start, a.end, a.t, a.d, a.gap) == (b.start, b.end, b.t, b.d, b.gap)
    assert np.array_equal(a.ts, b.ts) and np.array_equal(a.ds, b.ds)


def _read(c: Choice, p: Pass | None) -> list[float]:
    """What location_check reads off a named pass: the track at its moments, the line across its outage."""
    if p is None:
        return []
    if p.unseen:
        return [line_distance(p, c.t, c.x, c.y)]
    g = np.append(np.arange(p.start, p.end, 5.0), [p.end, *p.ts.tolist()])
    return np.interp(g, c.t, c.x).tolist() + np.interp(g, c.t, c.y).tolist()


def _check(t: np.ndarray, x: np.ndarray, y: np.ndarray, at: float, params: Params, windows: tuple[float, ...]) -> None:
    lat = LAT0 + y / K
    lon = LON0 + x / (K * np.cos(np.radians(LAT0)))
    whole = choose(t, lat, lon, (LAT0, LON0), at, params, windows=())
    near = choose(t, lat, lon, (LAT0, LON0), at, params, windows=windows)
    for name in ("fit", "chosen", "other"):
        _same_pass(getattr(near, name), getattr(whole, name))
        assert _read(near, getattr(near, name)) == _read(whole, getattr(whole, name))
    if whole.fit is None and whole.chosen is None:  # only the whole day names its nearest fix
        assert near.t.size == whole.t.size


@st.composite
def tracks(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    n = draw(st.integers(2, 400))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    gaps = rng.choice([1.0, 5.0, 5.0, 5.0, 20.0, 140.0, 160.0, 400.0, 2000.0], size=n - 1)
    t = 1.7e9 + np.concatenate([[0.0], np.cumsum(gaps + rng.uniform(0.0, 1.0, n - 1))])
    step = rng.choice([0.0, 3.0, 10.0, 40.0, 300.0], size=(n, 1)) * rng.normal(size=(n, 2))
    xy = np.cumsum(step, axis=0) + rng.normal(0.0, draw(st.sampled_from([20.0, 80.0, 300.0])), size=2)
    wrap = draw(st.sampled_from([None, 120.0, 400.0, 1500.0]))  # keep coming back by the place
    if wrap is not None:
        xy = (xy + wrap) % (2.0 * wrap) - wrap
    at = float(t[0] + (t[-1] - t[0]) * draw(st.floats(-0.1, 1.1)))
    return t, xy[:, 0].copy(), xy[:, 1].copy(), at


@settings(max_examples=400, deadline=None)
@given(tracks(), st.sampled_from([WINDOWS_S, NARROW, (200.0, 500.0, 1500.0), (181.5, 300.0)]))
def test_the_window_names_what_the_whole_day_names(track, windows):
    t, x, y, at = track
    _check(t, x, y, at, Params(), windows)


@settings(max_examples=150, deadline=None)
@given(tracks(), st.floats(1.1, 20.0), st.floats(60.0, 3600.0))
def test_also_with_other_weights(track, ratio, scale):
    t, x, y, at = track
    params = Params(time_check_rival_ratio=ratio, time_check_offset_scale_s=scale)
    _check(t, x, y, at, params, (200.0, 900.0, 3600.0))


def test_a_pass_at_the_window_edge_sends_it_to_the_next_window():
    # he waits 40 min at the place; the report is 10 min into it: the 15-min window cuts the wait
    t = 1.7e9 + np.arange(0.0, 7200.0, 5.0)
    x = np.where((t - t[0] > 1800.0) & (t - t[0] < 4200.0), 3.0, 900.0)
    y = np.zeros_like(x)
    at = float(t[0] + 2400.0)
    _check(t, x, y, at, Params(), NARROW)
    _check(t, x, y, at, Params(), WINDOWS_S)
    c = choose(t, LAT0 + y / K, LON0 + x / (K * np.cos(np.radians(LAT0))), (LAT0, LON0), at, Params(), NARROW)
    assert c.fit is not None and c.fit.end - c.fit.start > 2000.0


def test_a_rival_outside_the_window_is_still_named():
    # he rides past 10 m off the place 5 min after the reported time and 15.5 min before it (out
    # of the first window): the later pass is the best, the earlier one its rival (less than 3x
    # less likely), which only a wider window can see
    at = 1.7e9
    t = at + np.arange(-3600.0, 3600.0, 5.0)
    x = 3075.0 - 5.0 * np.abs(t - (at - 315.0))
    y = np.full_like(x, 10.0)
    _check(t, x, y, at, Params(), NARROW)
    _check(t, x, y, at, Params(), WINDOWS_S)
    c = choose(t, LAT0 + y / K, LON0 + x / (K * np.cos(np.radians(LAT0))), (LAT0, LON0), at, Params(), NARROW)
    assert c.fit is None and c.chosen is not None and c.other is not None
    assert abs(c.chosen.t - (at + 300.0)) < 1.0 and abs(c.other.t - (at - 930.0)) < 1.0
