"""DATA_CONTRACT §5, one rule at a time, on tiny hand-built rider-days."""

from __future__ import annotations

from dataclasses import replace

import pytest

from services.trajectory.domain.assess import analyse
from services.trajectory.domain.model import Phase

from .builders import PARAMS, T0, day, online, order, ride, stay

pytestmark = pytest.mark.unit

M1, C1 = (0.0, 0.0), (1500.0, 0.0)  # first order: merchant, customer
M2, C2 = (1500.0, 1500.0), (0.0, 1500.0)  # second order


def first_order_points():
    """10:00 online; order A accepted 10:10; at the merchant 10:14-10:17; delivered 10:23."""
    return (ride(0, 600, (-1500, 0), (-1000, 0)) + ride(600, 840, (-1000, 0), M1)
            + stay(840, 1020, M1) + ride(1020, 1320, M1, C1) + stay(1320, 1380, C1, seed=1))


def phase(d, seconds: float) -> Phase:
    return analyse(d, PARAMS).timeline.at(T0 + seconds).phase


def two_orders(gap_points, b_accepted: float, *, arrived_events: bool = True, presence=None):
    a = order("A", 600, picked=1020, ended=1380, merchant=M1, customer=C1, arrived=840 if arrived_events else None)
    tb = b_accepted
    b = order("B", tb, picked=tb + 600, ended=tb + 1000, merchant=M2, customer=C2,
              arrived=tb + 400 if arrived_events else None)
    pts = (first_order_points() + gap_points + ride(tb, tb + 400, gap_points[-1][1] if gap_points else C1, M2)
           + stay(tb + 400, tb + 600, M2, seed=2) + ride(tb + 600, tb + 1000, M2, C2) + stay(tb + 1000, tb + 3000, C2, seed=3))
    return day([a, b], presence if presence is not None else online(0), pts)


def test_order_phases_follow_the_platform_events():
    d = two_orders(ride(1380, 1800, C1, (1500, 700)), 1800)
    assert phase(d, 300) is Phase.IDLE  # online, before the first order
    assert phase(d, 700) is Phase.TO_PICKUP
    assert phase(d, 900) is Phase.AT_MERCHANT
    assert phase(d, 1100) is Phase.DELIVERING
    assert phase(d, 1500) is Phase.CONNECTING
    assert phase(d, 1900) is Phase.TO_PICKUP
    assert phase(d, 2300) is Phase.AT_MERCHANT
    assert phase(d, 2500) is Phase.DELIVERING
    assert phase(d, 3500) is Phase.IDLE  # after the last order


def test_before_any_presence_the_rider_is_offline():
    d = two_orders(ride(1380, 1800, C1, (1500, 700)), 1800, presence=online(300))
    assert phase(d, 100) is Phase.OFFLINE
    assert phase(d, 400) is Phase.IDLE


def test_boundaries_are_half_open():
    d = two_orders(ride(1380, 1800, C1, (1500, 700)), 1800)
    assert phase(d, 1380) is Phase.CONNECTING  # delivered ends the order
    assert phase(d, 1379.9) is Phase.DELIVERING
    assert phase(d, 1020) is Phase.DELIVERING  # picked up at that instant


def test_gap_longer_than_the_limit_is_idle():
    pts = ride(1380, 1380 + 1900, C1, (1500, 700), every=5)
    d = two_orders(pts, 1380 + 1801)
    assert phase(d, 1500) is Phase.IDLE
    d = two_orders(ride(1380, 1380 + 1799, C1, (1500, 700)), 1380 + 1799)
    assert phase(d, 1500) is Phase.CONNECTING


def test_a_dwell_of_ten_minutes_breaks_the_connection():
    pts = ride(1380, 1500, C1, (1500, 300)) + stay(1500, 1500 + 660, (1500, 300), every=20) + ride(2160, 2400, (1500, 300), (1500, 700))
    d = two_orders(pts, 2400)
    assert phase(d, 1400) is Phase.IDLE  # the whole gap, not only the dwell
    assert phase(d, 2300) is Phase.IDLE
    short = ride(1380, 1500, C1, (1500, 300)) + stay(1500, 1500 + 480, (1500, 300), every=20) + ride(1980, 2400, (1500, 300), (1500, 700))
    assert phase(two_orders(short, 2400), 1700) is Phase.CONNECTING


def test_dwell_is_counted_inside_the_gap_only():
    # 8 min at the customer before delivering and 6 min after: 6 min inside the gap
    a = order("A", 0, picked=120, ended=1000, merchant=M1, customer=C1, arrived=60)
    b = order("B", 1600, picked=2000, ended=2400, merchant=M2, customer=C2, arrived=1900)
    pts = (stay(0, 120, M1) + ride(120, 520, M1, C1) + stay(520, 1360, C1, every=20)
           + ride(1360, 1900, C1, M2) + stay(1900, 2000, M2) + ride(2000, 2400, M2, C2))
    d = day([a, b], online(-100), pts)
    assert phase(d, 1200) is Phase.CONNECTING


def test_going_offline_in_a_gap_makes_it_idle_and_offline():
    presence = online(0, 1500) + online(1600)
    d = two_orders(ride(1380, 1800, C1, (1500, 700)), 1800, presence=presence)
    assert phase(d, 1450) is Phase.IDLE
    assert phase(d, 1550) is Phase.OFFLINE
    assert phase(d, 1700) is Phase.IDLE


def test_several_platforms_online_on_any_is_online():
    presence = online(0, 1500, "meituan") + online(1400, None, "eleme") + online(1750, None, "meituan")
    d = two_orders(ride(1380, 1800, C1, (1500, 700)), 1800, presence=presence)
    assert phase(d, 1550) is Phase.CONNECTING  # meituan off, eleme on: still online throughout
    presence = online(0, 1500, "meituan") + online(1520, None, "eleme")
    d = two_orders(ride(1380, 1800, C1, (1500, 700)), 1800, presence=presence)
    assert phase(d, 1510) is Phase.OFFLINE
    assert phase(d, 1450) is Phase.IDLE


def test_order_in_progress_wins_over_offline_presence():
    d = two_orders(ride(1380, 1800, C1, (1500, 700)), 1800, presence=online(0, 1000))
    assert phase(d, 1100) is Phase.DELIVERING
    assert phase(d, 1500) is Phase.OFFLINE


def test_stacked_orders_delivering_wins_then_to_pickup():
    a = order("A", 600, picked=1020, ended=1380, merchant=M1, customer=C1, arrived=840)
    b = order("B", 1100, picked=1700, ended=2100, merchant=M2, customer=C2, arrived=1600)
    pts = first_order_points() + ride(1380, 1600, C1, M2) + stay(1600, 1700, M2) + ride(1700, 2100, M2, C2)
    d = day([a, b], online(0), pts)
    assert phase(d, 1200) is Phase.DELIVERING  # B accepted, A still carried
    assert phase(d, 1450) is Phase.TO_PICKUP  # A delivered, on the way to B's merchant
    assert phase(d, 1650) is Phase.AT_MERCHANT
    assert phase(d, 1800) is Phase.DELIVERING


def test_cancelled_order_ends_the_active_period():
    a = order("A", 600, ended=900, merchant=M1, customer=C1, cancelled=True)
    pts = ride(0, 600, (-1500, 0), (-1000, 0)) + ride(600, 900, (-1000, 0), (-500, 0)) + ride(900, 1500, (-500, 0), (0, 500))
    b = order("B", 1500, picked=1900, ended=2300, merchant=M2, customer=C2, arrived=1800)
    d = day([a, b], online(0), pts + ride(1500, 1800, (0, 500), M2) + stay(1800, 1900, M2) + ride(1900, 2300, M2, C2))
    assert phase(d, 700) is Phase.TO_PICKUP
    assert phase(d, 1000) is Phase.CONNECTING


def test_arrival_inferred_from_gps_without_the_event():
    d = two_orders(ride(1380, 1800, C1, (1500, 700)), 1800, arrived_events=False)
    tl = analyse(d, PARAMS).timeline
    arr = tl.arrivals["A"]
    assert arr.how == "gps"
    assert abs(arr.t - (T0 + 840)) < 30  # reached the 50 m circle a few seconds before stopping
    assert phase(d, 780) is Phase.TO_PICKUP
    assert phase(d, 900) is Phase.AT_MERCHANT
    assert phase(d, 2300) is Phase.AT_MERCHANT


def test_arrival_uses_the_door_not_the_geocode():
    # the platform geocodes the merchant 70 m off the door where the rider waits
    a = order("A", 600, picked=1020, ended=1380, merchant=(70, 0), customer=C1)
    d = day([a], online(0), first_order_points())
    arr = analyse(d, PARAMS).timeline.arrivals["A"]
    assert arr.how == "gps" and abs(arr.t - (T0 + 840)) < 30


def test_outage_that_could_hide_a_dwell_abstains():
    pts = ride(1380, 1500, C1, (1500, 300)) + [(1500 + 720, (1500, 310))] + ride(2230, 2400, (1500, 310), (1500, 700))
    d = two_orders(pts, 2400)
    assert phase(d, 1800) is Phase.INSUFFICIENT_DATA


def test_short_outage_or_a_long_ride_through_it_still_decides():
    short = ride(1380, 1600, C1, (1500, 300)) + ride(1780, 2400, (1500, 400), (1500, 700))
    assert phase(two_orders(short, 2400), 1700) is Phase.CONNECTING
    # 12 min unobserved, but he covered 4.5 km in it: no time left for a 10-minute stay
    far = ride(1380, 1500, C1, (1500, 300)) + ride(2220, 2400, (6000, 300), (6000, 700))
    assert phase(two_orders(far, 2400), 1800) is Phase.CONNECTING


def test_thresholds_are_parameters():
    pts = ride(1380, 1500, C1, (1500, 300)) + stay(1500, 1500 + 480, (1500, 300), every=20) + ride(1980, 2400, (1500, 300), (1500, 700))
    d = two_orders(pts, 2400)
    assert analyse(d, PARAMS).timeline.at(T0 + 1700).phase is Phase.CONNECTING
    strict = replace(PARAMS, dwell_min_s=300.0)
    assert analyse(d, strict).timeline.at(T0 + 1700).phase is Phase.IDLE
    tight = replace(PARAMS, max_connecting_gap_s=600.0)
    assert analyse(d, tight).timeline.at(T0 + 1700).phase is Phase.IDLE


def test_timeline_covers_every_instant_once():
    d = two_orders(ride(1380, 1800, C1, (1500, 700)), 1800)
    segs = analyse(d, PARAMS).timeline.segments
    assert segs[0].start == float("-inf") and segs[-1].end == float("inf")
    for s, n in zip(segs, segs[1:], strict=False):
        assert s.end == n.start and s.start < s.end
