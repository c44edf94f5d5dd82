"""Phone clock against platform clock, from where the rider stands at pickups and deliveries."""

from __future__ import annotations

import pytest

from services.trajectory.domain.assess import analyse
from services.trajectory.domain.model import Phase

from .builders import PARAMS, T0, day, online, order, ride, stay

pytestmark = pytest.mark.unit

MERCHANTS = [(0, 0), (2000, 500), (-800, 1600), (1200, -900)]
CUSTOMERS = [(1500, 0), (900, 1800), (-300, -400), (2500, 300)]


def shift(points, skew):
    return [(t + skew, p) for t, p in points]


def working_day(skew: float, arrived_events: bool = True):
    """Four orders, each: ride to merchant, wait 3 min, pick up, ride, 1 min at the door, deliver."""
    orders, pts, here, t = [], [], (-1500.0, 0.0), 0.0
    for k, (m, c) in enumerate(zip(MERCHANTS, CUSTOMERS, strict=True)):
        acc, arr, pick = t, t + 300, t + 480
        dl = pick + 360
        pts += ride(acc, arr, here, m) + stay(arr, pick, m, seed=k) + ride(pick, dl - 60, m, c) + stay(dl - 60, dl, c, seed=10 + k)
        orders.append(order(f"O{k}", acc, picked=pick, ended=dl, merchant=m, customer=c,
                            arrived=arr if arrived_events else None))
        here, t = c, dl + 240
        pts += ride(dl, t, c, (c[0] + 300, c[1]))
        here = (c[0] + 300, c[1])
    return day(orders, online(-600), shift(pts, skew))


@pytest.mark.parametrize("skew", [0.0, 95.0, -240.0, 600.0])
def test_skew_is_recovered_within_ten_seconds(skew):
    a = analyse(working_day(skew), PARAMS)
    assert a.skew.reliable
    assert abs(a.skew.skew_s - skew) <= 10.0
    assert a.skew.events_used >= 6


def test_corrected_clock_places_gps_arrival_right():
    # without the arrival event, a 4-minute fast phone clock would put the arrival 4 minutes late
    d = working_day(240.0, arrived_events=False)
    a = analyse(d, PARAMS)
    arr = a.timeline.arrivals["O1"]
    assert arr.how == "gps" and abs(arr.t - (T0 + 1380)) < 40  # O1 accepted at 1080, reached at 1380
    assert a.timeline.at(T0 + 1380 + 60).phase is Phase.AT_MERCHANT
    assert a.timeline.at(T0 + 1380 - 60).phase is Phase.TO_PICKUP


def test_no_gps_means_no_skew_claimed():
    d = working_day(0.0)
    from services.trajectory.domain.model import RiderDay, Track

    a = analyse(RiderDay(d.rider_id, d.orders, d.presence, Track.empty()), PARAMS)
    assert a.skew.skew_s == 0.0 and not a.skew.reliable


def test_skew_on_simulated_dirty_days_is_within_seconds(tmp_path):
    """Simulated days know the phone's true offset; the estimate lands within a few seconds."""
    import dataclasses

    from services.trajectory.adapters.feeds import load_dir
    from tests.support import simulate

    errors = []
    for seed in (1, 2, 3):
        day = simulate.simulate(dataclasses.replace(simulate.preset("dirty"), seed=seed, garbage=0))
        simulate.write_day(tmp_path / str(seed), day)
        feeds = load_dir(tmp_path / str(seed), "Asia/Shanghai")
        for truth in day.riders:
            est = analyse(feeds.days[truth.rider_id], PARAMS).skew
            assert est.reliable
            errors.append(est.skew_s - truth.skew_s)
    assert len(errors) >= 6
    assert max(abs(e) for e in errors) <= 8.0, errors
