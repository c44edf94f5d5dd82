"""Issue 17 part 2: the bound on "could have been a stay" looks both ways. Time hidden between the
previous order's end and the first fix of a gap counts when the rider's known position at the
gap's start is near where he is next seen; the same at the gap's end, up to the next fix after
the next order's acceptance. Mirror cases, each with a control where the rider is seen far away."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.trajectory.domain.assess import analyse, assess
from services.trajectory.domain.model import Incident, Phase
from services.trajectory.domain.motion import longest_dwell, resample
from shared.timeutil import iso_local

from .builders import PARAMS, T0, day, online, order, ride, stay, track

pytestmark = pytest.mark.unit

M1, C1 = (0.0, 0.0), (1500.0, 0.0)
M2 = (3000.0, 3000.0)


def _day(gap_points, *, last_at_c: float = 840.0, c_stay_from: float = 780.0, b_points=None):
    """Order A: accepted 10:00, picked up 10:05, delivered 10:15 at C1; order B accepted 10:40."""
    a = order("A", 0, picked=300, ended=900, merchant=M1, customer=C1, arrived=60)
    b = order("B", 2400, picked=3000, ended=3600, merchant=M2, customer=(3000, 4500), arrived=2900)
    pts = (ride(0, 60, (-300, 0), M1) + stay(60, 300, M1) + ride(300, c_stay_from, M1, C1)
           + stay(c_stay_from, last_at_c + 1, C1, every=20) + gap_points)
    pts += b_points if b_points is not None else ride(2460, 2900, gap_points[-1][1], M2)
    pts += stay(2900, 3000, M2, seed=2) + ride(3000, 3600, M2, (3000, 4500))
    return day([a, b], online(-100), pts)


def gap_phase(d, at: float = 1800.0):
    tl = analyse(d, PARAMS).timeline
    return tl.at(T0 + at).phase, tl.gap_at(T0 + at)


def test_minutes_hidden_at_the_start_of_a_gap_count_when_he_reappears_at_the_drop_off():
    # delivered 10:15; GPS lost 10:14-10:19:40; seen 5.5 min at the drop-off; rides on; next order 10:40
    pts = stay(1180, 1510, C1, every=20, seed=4) + ride(1510, 2460, C1, (1500, 2500))
    ph, gap = gap_phase(_day(pts))
    assert ph is Phase.INSUFFICIENT_DATA
    assert gap.dwell.certain_s < PARAMS.dwell_min_s <= gap.dwell.possible_s
    assert gap.dwell.possible_s == pytest.approx(10.2 * 60, abs=30)


def test_minutes_hidden_at_the_start_do_not_count_when_he_reappears_far_away():
    # the same outage, but he reappears 1 km from the drop-off: he needed ~2 min to get there
    p = (1500.0, 1000.0)
    pts = stay(1180, 1510, p, every=20, seed=4) + ride(1510, 2460, p, (1500, 2500))
    ph, gap = gap_phase(_day(pts))
    assert ph is Phase.CONNECTING
    assert gap.dwell.possible_s < PARAMS.dwell_min_s


def test_minutes_hidden_at_the_end_of_a_gap_count_when_he_reappears_at_the_same_place():
    # rides off at 10:15, seen 5.5 min at P from 10:29:50, GPS lost 10:35:20-10:41 (the next order
    # came at 10:40), seen again at P: he may have stayed there 10.2 min
    p = (1500.0, 1500.0)
    pts = ride(900, 1790, C1, p) + stay(1790, 2120, p, every=20, seed=5)
    d = _day(pts, b_points=stay(2460, 2480, p, seed=6) + ride(2480, 2900, p, M2))
    ph, gap = gap_phase(d, 1500)
    assert ph is Phase.INSUFFICIENT_DATA
    assert gap.dwell.possible_s == pytest.approx(10.2 * 60, abs=30)


def test_minutes_hidden_at_the_end_do_not_count_when_he_reappears_far_away():
    p, q = (1500.0, 1500.0), (1500.0, 3500.0)  # next seen 2 km away: he left P by about 10:36:56
    pts = ride(900, 1790, C1, p) + stay(1790, 2120, p, every=20, seed=5)
    d = _day(pts, b_points=stay(2460, 2480, q, seed=6) + ride(2480, 2900, q, M2))
    ph, gap = gap_phase(d, 1500)
    assert ph is Phase.CONNECTING
    assert gap.dwell.possible_s < PARAMS.dwell_min_s


def test_the_bound_is_the_same_both_ways():
    """A stay seen for 5.5 min with 4 min 40 s hidden before it, or after it, inside the window."""
    p = (0.0, 0.0)
    before = day([], online(-100), ride(0, 300, (-2000, 0), (-10, 0)) + [(300, p)] + stay(580, 910, p, every=20)
                 + ride(910, 1200, p, (2000, 0)))
    after = day([], online(-100), ride(0, 250, (-2000, 0), p) + stay(250, 580, p, every=20) + [(860, p)]
                + ride(860, 1200, p, (2000, 0)))
    b = longest_dwell(analyse(before, PARAMS).grid, T0 + 300, T0 + 1200, PARAMS)
    a = longest_dwell(analyse(after, PARAMS).grid, T0 + 0, T0 + 860, PARAMS)
    assert b.possible_s == pytest.approx(a.possible_s, abs=15)
    assert b.possible_s >= PARAMS.dwell_min_s


# ---------------------------------------------------------------- the bridging rule (part 3)

def _stay_with_outage(out_s: float, end_off_m: float):
    """Between orders A (ends 10:15) and B (10:40): rides 3 min to P, stays there 12 min of which
    ``out_s`` without GPS in the middle, reappearing ``end_off_m`` from where he was lost."""
    p = (1500.0, 1500.0)
    q = (p[0] + end_off_m, p[1])
    lost = 1500 - out_s / 2
    pts = ride(900, 1080, C1, p) + stay(1080, lost, p, every=20, jitter=2, seed=7)
    pts += stay(lost + out_s, 1800, q, every=20, jitter=2, seed=8) + ride(1800, 2460, q, (1500, 2500))
    return _day(pts)


def test_an_indoor_outage_inside_a_stay_is_bridged_and_said_to_have_decided():
    d = _stay_with_outage(240, 5)
    ph, gap = gap_phase(d, 2000)
    assert ph is Phase.IDLE
    assert gap.dwell.bridge_decided and gap.dwell.bridged_s == pytest.approx(240, abs=20)
    res = assess(analyse(d, PARAMS), Incident("I", "R1", T0 + 2000, "x"), PARAMS, iso_local)
    assert res["phase"] == "idle"
    assert any("this rule decided the finding" in s for s in res["explanation_en"])


@pytest.mark.parametrize(("out_s", "end_off_m"), [(240, 40), (540, 5)])
def test_an_outage_too_long_or_whose_ends_are_apart_is_not_bridged(out_s, end_off_m):
    ph, gap = gap_phase(_stay_with_outage(out_s, end_off_m), 2000)
    assert ph is Phase.INSUFFICIENT_DATA  # never idle on time nobody saw
    assert gap.dwell.certain_s < PARAMS.dwell_min_s <= gap.dwell.possible_s


# ---------------------------------------------------------------- drift told apart from movement

def _stay_with_excursion(peak_m: float, dur_s: float):
    """As above, 12 min at P, but in the middle the fix goes ``peak_m`` off and back (a half
    sine) over ``dur_s``: slowly, it is drift; quickly, it is a ride."""
    import math
    p = (1500.0, 1500.0)
    mid0 = 1500 - dur_s / 2
    pts = ride(900, 1080, C1, p) + stay(1080, mid0, p, every=10, jitter=2, seed=7)
    for t in range(int(mid0), int(mid0 + dur_s), 5):
        w = math.sin(math.pi * (t - mid0) / dur_s) * peak_m
        pts.append((float(t), (p[0] + w, p[1])))
    pts += stay(mid0 + dur_s, 1800, p, every=10, jitter=2, seed=8) + ride(1800, 2460, p, (1500, 2500))
    return _day(pts)


def test_a_slow_excursion_off_and_back_is_drift_and_said_to_have_decided():
    d = _stay_with_excursion(90, 240)  # at most 1.2 m/s
    ph, gap = gap_phase(d, 2000)
    assert ph is Phase.IDLE
    assert gap.dwell.drift_s >= 180
    res = assess(analyse(d, PARAMS), Incident("I", "R1", T0 + 2000, "x"), PARAMS, iso_local)
    assert any("GPS drift" in s for s in res["explanation_en"])


def test_a_quick_excursion_is_a_ride_not_drift():
    d = _stay_with_excursion(120, 50)  # out 120 m and back within 50 s: over 7 m/s
    ph, gap = gap_phase(d, 2000)
    assert ph is not Phase.IDLE
    assert gap.dwell.drift_s == 0
    assert gap.dwell.certain_s < PARAMS.dwell_min_s


# ---------------------------------------------------------------- arrival at the merchant (part 3)

def _wait_at_merchant(points_at_door, *, geocode=(0.0, 0.0)):
    """Order A accepted 10:00 at 1.2 km; the rider reaches the door (0, 0) at 10:04, picks up at
    10:12 (no arrived_merchant), rides to the customer; ``points_at_door``: what GPS saw of the wait."""
    a = order("A", 0, picked=720, ended=1300, merchant=geocode, customer=C1)
    pts = ride(0, 240, (-1200, 0), (0, 0)) + points_at_door + ride(730, 1300, (0, 0), C1)
    return day([a], online(-100), pts)


def test_arrival_from_the_last_fix_before_an_indoor_outage_at_the_merchant():
    # seen at the door 10:04-10:05, then nothing until he has ridden 80 m off after pickup; the
    # pin is 90 m off the door, so the geocode alone never places him at the merchant
    d = _wait_at_merchant(stay(240, 300, (0, 0), every=10) + [(745, (80, 0))], geocode=(0, -90))
    tl = analyse(d, PARAMS).timeline
    assert tl.arrivals["A"].how == "gps"
    assert abs(tl.arrivals["A"].t - (T0 + 240)) < 30
    assert tl.at(T0 + 500).phase is Phase.AT_MERCHANT
    assert tl.at(T0 + 120).phase is Phase.TO_PICKUP


def test_arrival_at_a_door_70_m_from_the_pin_despite_a_drift_before_pickup():
    # the pin is 70 m off; in the last 2 min of the wait the fix drifts 80 m away
    import math
    drift = [(float(t), (80 * math.sin(math.pi * (t - 600) / 240), 0.0)) for t in range(600, 720, 5)]
    d = _wait_at_merchant(stay(240, 600, (0, 0), every=10) + drift, geocode=(0, 70))
    tl = analyse(d, PARAMS).timeline
    assert tl.arrivals["A"].how == "gps"
    assert abs(tl.arrivals["A"].t - (T0 + 240)) < 30
    assert tl.at(T0 + 400).phase is Phase.AT_MERCHANT


def test_arrival_when_the_whole_wait_is_an_indoor_outage():
    # at the door at 10:04 for a minute, then no GPS for 15 min (until after pickup at 10:20)
    a = order("A", 0, picked=1200, ended=1800, merchant=(0, -90), customer=C1)
    pts = ride(0, 240, (-1200, 0), (0, 0)) + stay(240, 300, (0, 0), every=10) + ride(1260, 1800, (200, 0), C1)
    tl = analyse(day([a], online(-100), pts), PARAMS).timeline
    assert tl.arrivals["A"].how == "gps" and abs(tl.arrivals["A"].t - (T0 + 240)) < 30
    assert tl.at(T0 + 900).phase is Phase.AT_MERCHANT


def test_a_lone_fix_between_two_outages_does_not_rule_a_stay_out():
    # 13 min at P: seen 3 min, then no GPS but for one poor fix 60 m off, then seen 3 min
    p = (1500.0, 1500.0)
    pts = (ride(900, 1080, C1, p) + stay(1080, 1260, p, every=10, jitter=2, seed=7) + [(1500, (1560, 1500))]
           + stay(1740, 1860, p, every=10, jitter=2, seed=8) + ride(1860, 2460, p, (1500, 2500)))
    ph, gap = gap_phase(_day(pts), 2000)
    assert ph is Phase.INSUFFICIENT_DATA  # not connecting: a 10-min stay is not ruled out
    assert gap.dwell.possible_s >= PARAMS.dwell_min_s > gap.dwell.certain_s


# ---------------------------------------------------------------- the bounds, on any track

legs = st.lists(st.tuples(st.floats(5.0, 420.0), st.floats(-80.0, 80.0), st.floats(-80.0, 80.0)),
                min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(legs, st.floats(0.0, 3000.0), st.floats(60.0, 1800.0))
def test_what_was_seen_never_exceeds_what_was_possible(steps, start, length):
    t, x, y, pts = 0.0, 0.0, 0.0, []
    for dt, dx, dy in steps:
        t, x, y = t + dt, x + dx, y + dy
        pts.append((t, (x, y)))
    g = resample(track(pts), PARAMS)
    d = longest_dwell(g, T0 + start, T0 + start + length, PARAMS)
    assert 0.0 <= d.certain_s <= d.possible_s <= length + 10.0
    assert 0.0 <= d.bridged_s + d.drift_s <= 2 * d.certain_s + 1e-9
