"""GPS cleaning: order, duplicates, poor fixes, teleports, observation gaps."""

from __future__ import annotations

import numpy as np
import pytest

from services.trajectory.domain.clean import clean
from services.trajectory.domain.model import Track

from .builders import PARAMS, T0, ride, stay, track

pytestmark = pytest.mark.unit


def permuted(tr: Track, seed: int = 0) -> Track:
    p = np.random.default_rng(seed).permutation(len(tr))
    return Track(tr.t[p], tr.lat[p], tr.lon[p], tr.accuracy[p])


def test_sorts_and_never_modifies_its_input():
    tr = permuted(track(ride(0, 300, (0, 0), (1000, 0))))
    before = tr.t.copy()
    out, rep = clean(tr, PARAMS)
    assert np.all(np.diff(out.t) > 0)
    np.testing.assert_array_equal(tr.t, before)
    assert rep.used == len(tr) == rep.raw


def test_exact_and_near_duplicates_are_dropped():
    pts = ride(0, 300, (0, 0), (1000, 0))
    dup = pts + pts[10:20] + [(pts[30][0] + 0.3, (pts[30][1][0] + 0.5, pts[30][1][1]))]
    out, rep = clean(track(dup), PARAMS)
    assert len(out) == len(pts)
    assert rep.duplicates == 11


def test_same_instant_keeps_the_most_accurate_fix():
    a = track([(0, (0, 0)), (10, (50, 0))], accuracy=30.0)
    b = track([(10, (52, 0))], accuracy=4.0)
    tr = Track(np.r_[a.t, b.t], np.r_[a.lat, b.lat], np.r_[a.lon, b.lon], np.r_[a.accuracy, b.accuracy])
    out, _ = clean(tr, PARAMS)
    assert len(out) == 2 and out.accuracy[1] == 4.0


def test_inaccurate_fixes_are_not_used():
    tr = track(ride(0, 300, (0, 0), (1000, 0)))
    acc = tr.accuracy.copy()
    acc[5:8] = 120.0
    out, rep = clean(Track(tr.t, tr.lat, tr.lon, acc), PARAMS)
    assert rep.inaccurate == 3 and len(out) == len(tr) - 3


@pytest.mark.parametrize("jump_m", [400, 1500, 8000])
def test_teleports_are_rejected_while_riding_and_standing(jump_m):
    moving = ride(0, 300, (0, 0), (1500, 0))
    moving[30] = (moving[30][0], (moving[30][1][0], jump_m))
    standing = stay(300, 1500, (1500, 0), every=30)
    standing[10] = (standing[10][0], (1500 + jump_m, 0))
    out, rep = clean(track(moving + standing), PARAMS)
    assert rep.outliers == 2
    assert len(out) == len(moving) + len(standing) - 2


def test_two_consecutive_teleports_are_rejected():
    pts = ride(0, 300, (0, 0), (1500, 0))
    pts[30] = (pts[30][0], (pts[30][1][0], 2000))
    pts[31] = (pts[31][0], (pts[31][1][0], 2010))
    _, rep = clean(track(pts), PARAMS)
    assert rep.outliers == 2


def test_good_fixes_after_a_real_jump_across_a_gap_are_kept():
    # phone off for 10 minutes while the rider rode 3 km: everything after is good
    pts = ride(0, 300, (0, 0), (1500, 0)) + ride(900, 1200, (4500, 0), (6000, 0))
    out, rep = clean(track(pts), PARAMS)
    assert rep.outliers == 0 and len(out) == len(pts)
    assert rep.observation_gaps == ((T0 + 295, T0 + 900),)


def test_shuffled_and_duplicated_input_gives_the_same_track():
    pts = ride(0, 300, (0, 0), (1500, 0)) + stay(300, 900, (1500, 0)) + ride(900, 1200, (1500, 0), (1500, 900))
    pts[40] = (pts[40][0], (pts[40][1][0], 3000))
    base, _ = clean(track(pts), PARAMS)
    noisy = permuted(track(pts + pts[::7]), seed=3)
    out, _ = clean(noisy, PARAMS)
    np.testing.assert_array_equal(out.t, base.t)
    np.testing.assert_array_equal(out.lat, base.lat)
