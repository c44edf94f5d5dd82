"""The time check's passes by the reported place (domain/passes.py) and the pass it names
(DATA_CONTRACT §6): tiny tracks in metres from the place, then whole rider-days."""

from __future__ import annotations

import numpy as np
import pytest

from services.trajectory.domain.assess import analyse, assess, location_check
from services.trajectory.domain.model import Incident
from services.trajectory.domain.passes import Pass, best, fitting, passes, unseen_passes
from shared.timeutil import iso_local

from .builders import PARAMS, T0, day, online, order, pos, ride, stay

pytestmark = pytest.mark.unit

R, GAP = PARAMS.time_check_radius_m, PARAMS.observation_gap_s
V, DETOUR = PARAMS.plausible_speed_mps, PARAMS.time_check_detour_m


def line(t0: float, t1: float, a: tuple[float, float], b: tuple[float, float], every: float):
    """A straight ride as arrays (t, x, y), a fix every ``every`` seconds."""
    t = np.arange(t0, t1 + 1e-9, every)
    f = (t - t0) / (t1 - t0)
    return t, a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f


def joined(*parts):
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))


def at(start: float, end: float, t: float, d: float) -> Pass:
    return Pass(start, end, t, d, np.array([t]), np.array([d]))


# ---------------------------------------------------------------- passes

def test_the_closest_approach_does_not_depend_on_how_often_the_phone_sampled():
    # riding past 10 m off the place at 5 m/s; with a fix every 30 s none is within 50 m
    t, x, y = line(0, 200, (-500.0, 10.0), (500.0, 10.0), every=30.0)
    assert np.hypot(x, y).min() > R
    (p,) = passes(t, x, y, R, GAP)
    assert p.d == pytest.approx(10.0, abs=0.01) and p.t == pytest.approx(100.0, abs=0.1)
    assert p.start == pytest.approx(100.0 - np.sqrt(R**2 - 100.0) / 5.0, abs=0.1)


def test_no_pass_is_invented_across_an_outage():
    # the last fix before a 5-minute outage and the first after it lie on either side of the place
    t, x, y = np.array([0.0, 300.0]), np.array([-200.0, 200.0]), np.array([0.0, 0.0])
    assert passes(t, x, y, R, GAP) == []


def test_there_and_back_are_two_passes():
    t, x, y = joined(line(0, 200, (-500.0, 0.0), (500.0, 0.0), 5.0), line(600, 800, (500.0, 5.0), (-500.0, 5.0), 5.0))
    ps = passes(t, x, y, R, GAP)
    assert [round(p.t) for p in ps] == [100, 700]


def test_standing_at_the_door_while_the_fixes_wander_out_and_back_is_one_pass():
    t = np.arange(0.0, 600.0, 20.0)
    x = np.where((t // 100) % 2 == 1, 60.0, 5.0)  # out of the radius for 100 s at a time
    ps = passes(t, x, np.zeros_like(t), R, GAP)
    assert len(ps) == 1 and ps[0].start == 0.0


# ---------------------------------------------------------------- unseen passes: outages

def test_an_outage_with_the_place_on_his_way_is_an_unseen_pass():
    # fixes 200 m before the place and 600 m after it, 5 minutes apart: he rode by it, a quarter
    # of the way through the outage if he rode steadily
    t, x, y = np.array([0.0, 300.0]), np.array([-200.0, 600.0]), np.array([0.0, 10.0])
    (u,) = unseen_passes(t, x, y, GAP, V, DETOUR)
    assert u.unseen and u.gap == (0.0, 300.0)
    assert u.t == pytest.approx(300.0 * 200.0 / (200.0 + np.hypot(600.0, 10.0)), abs=0.5)
    # he may have been there from 200 m at 8 m/s after the first fix to 600 m before the last
    assert u.start == pytest.approx(25.0, abs=0.5) and u.end == pytest.approx(300.0 - 600.0 / V, abs=0.5)
    assert u.d < 1.0  # going by it is hardly longer than riding straight


def test_no_unseen_pass_off_his_way_or_out_of_reach_or_across_a_short_gap():
    off_the_way = np.array([0.0, 600.0]), np.array([-300.0, 300.0]), np.array([500.0, 500.0])  # 500 m off
    assert unseen_passes(*off_the_way, GAP, V, DETOUR) == []
    too_far = np.array([0.0, 160.0]), np.array([-1000.0, 1000.0]), np.array([0.0, 0.0])  # 2 km in 160 s
    assert unseen_passes(*too_far, GAP, V, DETOUR) == []
    short = np.array([0.0, 100.0]), np.array([-200.0, 200.0]), np.array([0.0, 0.0])  # a seen pass, not an outage
    assert unseen_passes(*short, GAP, V, DETOUR) == []


def unseen(start: float, end: float, t: float, detour: float = 0.0) -> Pass:
    return Pass(start, end, t, detour, np.array([t]), np.array([detour]), gap=(start - 10.0, end + 10.0))


def test_an_unseen_pass_does_not_beat_a_real_close_pass_as_far_off_in_time():
    real = at(-520.0, -500.0, -510.0, 8.0)
    hidden = unseen(-700.0, -300.0, -480.0)  # on his way, a little nearer the reported time
    assert best([real, hidden], 0.0, PARAMS) is real
    assert best([hidden], 0.0, PARAMS) is hidden
    # but a real pass hours away, or far from the place, loses to it
    assert best([at(-7220.0, -7200.0, -7210.0, 5.0), hidden], 0.0, PARAMS) is hidden


def test_an_unseen_pass_fits_when_he_could_have_been_there_at_the_reported_time():
    hidden = unseen(-300.0, 240.0, -250.0)  # riding steadily 4 min before, but it may have been then
    assert fitting([hidden], 0.0, PARAMS) is hidden
    assert fitting([unseen(-700.0, -300.0, -480.0)], 0.0, PARAMS) is None
    assert fitting([unseen(-700.0, -300.0, -170.0)], 0.0, PARAMS) is not None  # steady time within 3 min
    seen = at(150.0, 170.0, 160.0, 20.0)
    assert fitting([hidden, seen], 0.0, PARAMS) is seen  # a fix by the place first


def test_passes_leave_their_input_alone():
    t, x, y = line(0, 200, (-500.0, 10.0), (500.0, 10.0), every=30.0)
    copies = (t.copy(), x.copy(), y.copy())
    passes(t, x, y, R, GAP)
    assert all(np.array_equal(a, b) for a, b in zip((t, x, y), copies, strict=True))


# ---------------------------------------------------------------- which pass explains the report

def test_a_pass_within_three_minutes_of_the_reported_time_fits_however_near_another_is():
    there = at(1000.0, 1030.0, 1010.0, 35.0)  # 35 m off, 2.5 min before the report
    other = at(500.0, 520.0, 510.0, 1.0)
    assert fitting([other, there], 1180.0, PARAMS) is there
    assert fitting([other], 1180.0, PARAMS) is None


def test_a_pass_minutes_off_beats_a_nearer_one_hours_off():
    minutes = at(-440.0, -400.0, -420.0, 18.0)
    hours = at(10360.0, 10400.0, 10380.0, 3.0)
    assert best([minutes, hours], 0.0, PARAMS) is minutes


def test_a_pass_clearly_nearer_the_place_beats_one_a_few_minutes_nearer_the_reported_time():
    near_in_time = at(-300.0, -270.0, -285.0, 32.0)
    near_the_place = at(-510.0, -480.0, -495.0, 6.0)
    assert best([near_in_time, near_the_place], 0.0, PARAMS) is near_the_place


def test_between_passes_as_near_as_each_other_the_one_nearer_the_reported_time():
    a, b = at(-480.0, -450.0, -465.0, 7.0), at(-280.0, -250.0, -265.0, 7.5)
    assert best([a, b], 0.0, PARAMS) is b


# ---------------------------------------------------------------- on a rider-day

M, C = (0.0, 0.0), (2000.0, 0.0)


def _inc(t: float, where: tuple[float, float]) -> Incident:
    return Incident("I1", "R1", T0 + t, iso_local(T0 + t), pos(*where))


def test_a_long_wait_at_the_merchant_is_named_as_waiting_not_as_the_moment_he_rode_off():
    # waits at M from 10:05 to 10:12, picks up, rides to C; reports M at 10:25
    pts = ride(0, 300, (-1500.0, 0.0), M) + stay(300, 720, M, seed=3) + ride(720, 1120, M, C) + stay(1120, 1400, C)
    d = day([order("A", 0, picked=720, ended=1200, merchant=M, customer=C, arrived=300)], online(0), pts)
    lc = location_check(analyse(d, PARAMS), _inc(1500.0, M), None, PARAMS)
    assert lc["phase_at_nearest"] == "at_merchant" and lc["orders_at_nearest"] == ["A"]
    assert T0 + 300 <= lc["nearest_at"] <= T0 + 720 and lc["nearest_distance_m"] <= 15


def test_no_time_check_when_he_was_within_the_radius_at_the_reported_time():
    # he rode past P 2 m off at 10:07, and 35 m off at 10:15, the reported time: the time fits
    p = (1000.0, 0.0)
    pts = (ride(0, 420, (-1000.0, 2.0), (1800.0, 2.0)) + ride(420, 700, (1800.0, 2.0), (1800.0, 35.0))
           + ride(700, 1100, (1800.0, 35.0), (200.0, 35.0)))
    d = day([], online(0), pts)
    t_back = 700 + 800 / 1600 * 400  # when he rode back past P
    lc = location_check(analyse(d, PARAMS), _inc(t_back, p), None, PARAMS)
    assert "phase_at_nearest" not in lc
    assert abs(lc["minutes_from_reported"]) <= 3 and 30 <= lc["nearest_distance_m"] <= 40


def test_a_pass_hidden_in_an_outage_is_named_from_the_order_events():
    # delivering A from M to C: the GPS is silent from 10:10 to 10:17 while he rides past P; he
    # reports P at 10:24 (he rode past it at about 10:13)
    p = (1000.0, 0.0)
    pts = ride(0, 300, (-1000.0, 0.0), M) + stay(300, 420, M) + ride(420, 600, M, (400.0, 0.0))
    pts += ride(1020, 1320, (2000.0, 0.0), (3200.0, 0.0)) + stay(1320, 1900, (3200.0, 0.0))
    d = day([order("A", 0, picked=400, ended=1700, merchant=M, customer=(3200.0, 0.0), arrived=300)], online(0), pts)
    a = analyse(d, PARAMS)
    lc = location_check(a, _inc(1440.0, p), None, PARAMS)
    assert lc["phase_at_nearest"] == "delivering" and lc["orders_at_nearest"] == ["A"]
    assert lc["nearest_distance_m"] == pytest.approx(0.0, abs=1.0) and lc["gps_silent_from"] < T0 + 780 < lc["gps_silent_to"]
    assert lc["minutes_from_reported"] == pytest.approx(-11.0, abs=1.0)
    res = assess(a, _inc(1440.0, p), PARAMS, lambda t: iso_local(t, "Asia/Shanghai"))
    en, zh = " ".join(res["explanation_en"]), " ".join(res["explanation"])
    assert "GPS was silent from 10:09:55 to 10:17:00" in en and "on his way between those two fixes" in en and "delivering" in en
    assert "定位在 10:09:55 至 10:17:00 之间中断" in zh and "正在配送" in zh


def test_a_report_inside_an_outage_with_the_place_on_his_way_fits_the_track():
    p = (1000.0, 0.0)
    pts = ride(0, 600, (-1000.0, 0.0), (400.0, 0.0)) + ride(1020, 1320, (2000.0, 0.0), (3200.0, 0.0))
    a = analyse(day([], online(0), pts), PARAMS)
    lc = location_check(a, _inc(700.0, p), None, PARAMS)
    assert "phase_at_nearest" not in lc and lc["nearest_at"] == T0 + 700.0 and lc["minutes_from_reported"] == 0
    res = assess(a, _inc(700.0, p), PARAMS, lambda t: iso_local(t, "Asia/Shanghai"))
    assert "so the reported time fits his track" in " ".join(res["explanation_en"])


def _there_and_back(back_off_m: float = 0.0) -> object:
    # delivering A from M to C, he rides past P (10:05:20); delivers at 10:10; riding back to M for
    # order B (accepted 10:17:30), he passes P again (10:15, ``back_off_m`` north of it) between
    # the two orders
    p = (1000.0, 0.0)
    pts = (stay(0, 120, M) + ride(120, 520, M, C) + stay(520, 700, C)
           + ride(700, 1100, (C[0], back_off_m), (M[0], back_off_m)) + stay(1100, 1500, M, seed=1))
    orders = [order("A", 0, picked=120, ended=600, merchant=M, customer=C, arrived=0),
              order("B", 1050, picked=1200, merchant=M, customer=C, arrived=1100)]
    return analyse(day(orders, online(0), pts), PARAMS), p


def test_two_passes_about_as_likely_are_both_named_when_they_would_say_different_things():
    a, p = _there_and_back()
    res = assess(a, _inc(610.0, p), PARAMS, lambda t: iso_local(t, "Asia/Shanghai"))
    lc = res["location_check"]
    assert {lc["phase_at_nearest"], lc["phase_at_other_pass"]} == {"delivering", "connecting"}
    assert lc["continuous_delivery_at_nearest"] is True and lc["continuous_delivery_at_other_pass"] is True
    assert sorted([lc["minutes_from_reported"], lc["minutes_from_reported_other"]]) == pytest.approx([-5.0, 4.8], abs=0.5)
    en, zh = " ".join(res["explanation_en"]), " ".join(res["explanation"])
    assert "He also passed the reported place at" in en and "the track alone cannot tell which one is meant" in en
    assert "也经过报告地点" in zh and "无法确定指的是哪一次" in zh


def test_a_pass_far_less_likely_than_the_one_named_is_not_named():
    # the same reported time, but on the way back he passed 40 m from the place: not as likely
    a, p = _there_and_back(back_off_m=40.0)
    lc = location_check(a, _inc(610.0, p), None, PARAMS)
    assert lc["phase_at_nearest"] == "delivering" and "other_pass_at" not in lc
