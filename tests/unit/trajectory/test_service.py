"""The trajectory service's pure parts: ping identity, the rider-day around an incident, and the
evidence cut to the window (never a fix outside it)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.trajectory.adapters.store import ping_keys
from services.trajectory.domain.assess import analyse
from services.trajectory.service_layer.handlers import (
    day_window,
    incident_time,
    orders_in,
    timeline_in,
    track_in,
)
from shared.events import AssessmentRequested

from .builders import PARAMS, T0, day, online, order, ride, stay

pytestmark = pytest.mark.unit


def test_ping_keys_tell_fixes_apart_and_repeat_for_the_same_fix():
    lat = np.array([23.74, 23.74, 23.74, 23.74, 23.74000001])
    lon = np.array([114.7, 114.7, 114.7, 114.7, 114.7])
    acc = np.array([5.0, 5.0, 6.0, np.nan, 5.0])
    k = ping_keys(lat, lon, acc)
    assert k.dtype == np.int64 and (k >= 0).all()
    assert k[0] == k[1] and len(set(k.tolist())) == 4
    nan_other_payload = np.array([np.float64("nan")]) * -1  # a NaN with another bit pattern
    assert ping_keys(lat[:1], lon[:1], nan_other_payload)[0] == k[3]
    np.testing.assert_array_equal(ping_keys(lat[::-1], lon[::-1], acc[::-1]), k[::-1])  # per fix, not per batch


def test_day_window_is_the_local_day_widened_by_half_a_day():
    t = datetime.fromisoformat("2026-05-14T00:30:00+08:00").timestamp()
    d0, d1 = day_window(t, "Asia/Shanghai")
    assert d0 == datetime.fromisoformat("2026-05-13T12:00:00+08:00").timestamp()
    assert d1 == datetime.fromisoformat("2026-05-15T12:00:00+08:00").timestamp()
    # a day with a clock change lasts 23 hours
    t = datetime.fromisoformat("2026-03-29T15:00:00+02:00").timestamp()
    d0, d1 = day_window(t, "Europe/Berlin", margin_s=0)
    assert d1 - d0 == 23 * 3600


def test_incident_time_reads_a_naive_time_in_the_deployment_zone():
    req = AssessmentRequested(request_id="q", case_id="c", rider_id="r", incident_at=datetime(2026, 5, 14, 10, 0))
    assert incident_time(req, "Asia/Shanghai") == T0
    aware = req.model_copy(update={"incident_at": datetime.fromisoformat("2026-05-14T02:00:00+00:00")})
    assert incident_time(aware, "Europe/Berlin") == T0


def _between_orders_day():
    pts = ride(0, 600, (0, 0), (1000, 0)) + stay(600, 900, (1000, 0)) + ride(900, 1500, (1000, 0), (0, 500)) \
        + ride(1500, 2400, (0, 500), (2000, 500))
    return day([order("A", 0, 300, 600, merchant=(300, 0), customer=(1000, 0)),
                order("B", 1500, 1700, 2400, merchant=(0, 500), customer=(2000, 500))],
               online(-600, 3600), pts)


def test_evidence_around_an_incident_between_two_orders():
    d = _between_orders_day()
    a = analyse(d, PARAMS)
    w0, w1 = T0 + 1000, T0 + 1800
    tl = timeline_in(a, w0, w1)
    assert tl[0]["start"] == w0 and tl[-1]["end"] == w1
    assert [s["phase"] for s in tl] == ["connecting", "at_merchant", "delivering"]  # B accepted at its merchant
    assert all(a0["end"] == b0["start"] for a0, b0 in zip(tl, tl[1:], strict=False))
    assert tl[0]["orders"] == ["A", "B"] and tl[0]["continuous_delivery"] is True
    assert [o["order_id"] for o in orders_in(d, a, w0, w1)] == ["B"]
    assert [o["order_id"] for o in orders_in(d, a, T0 + 500, w1)] == ["A", "B"]
    b = orders_in(d, a, w0, w1)[0]
    assert b["accepted"] == T0 + 1500 and b["accepted_at"] == "2026-05-14T10:25:00+08:00"
    assert b["customer"] == [round(x, 3) for x in b["customer"]]  # coarsened: a third party's address


@settings(max_examples=60, deadline=None)
@given(st.floats(-1000, 3000), st.floats(0, 2000))
def test_the_track_never_leaves_the_window(start, width):
    a = analyse(_between_orders_day(), PARAMS)
    w0, w1 = T0 + start, T0 + start + width
    pts = track_in(a, w0, w1)
    assert all(w0 <= p[0] <= w1 for p in pts)
    inside = int(((a.track_t >= w0) & (a.track_t <= w1)).sum())
    assert len(pts) >= inside - 2  # only rounding at the very edges may drop a fix, never add one
