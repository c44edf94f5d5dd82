"""DATA_CONTRACT §5 rule 6 (the incident's aftermath) and the §6 time check, on tiny hand-built
rider-days: one order A delivered at 10:23 (tA), then the rider rides on and falls at 10:29."""

from __future__ import annotations

import pytest

from services.trajectory.domain.aftermath import find_aftermath
from services.trajectory.domain.assess import analyse, assess
from services.trajectory.domain.model import Incident, Phase
from shared.timeutil import iso_local

from .builders import PARAMS, T0, day, online, order, pos, ride, stay

pytestmark = pytest.mark.unit

M1, C1 = (0.0, 0.0), (1500.0, 0.0)  # order A: merchant, customer
M2, C2 = (2500.0, 2500.0), (1000.0, 2500.0)  # order B
P = (1500.0, 1200.0)  # where he falls
T_A = 1380.0  # order A delivered
AT = 1740.0  # the incident, 6 min after tA


def order_a_points():
    return (ride(0, 600, (-1500, 0), (-1000, 0)) + ride(600, 840, (-1000, 0), M1) + stay(840, 1020, M1)
            + ride(1020, T_A, M1, C1))


def rider_day(after, *, next_at: float | None = None, before=None, presence=None):
    """Order A, the ride to P (or ``before``), the points ``after`` the incident, and order B
    accepted at ``next_at`` (seconds after 10:00) if given."""
    pts = order_a_points() + (before if before is not None else ride(T_A, AT, C1, P)) + after
    orders = [order("A", 600, picked=1020, ended=T_A, merchant=M1, customer=C1, arrived=840)]
    if next_at is not None:
        start = pts[-1][1]
        orders.append(order("B", next_at, picked=next_at + 600, ended=next_at + 1000, merchant=M2, customer=C2,
                            arrived=next_at + 400))
        pts += (ride(next_at, next_at + 400, start, M2) + stay(next_at + 400, next_at + 600, M2, seed=5)
                + ride(next_at + 600, next_at + 1000, M2, C2))
    return day(orders, presence if presence is not None else online(0), pts)


def run(d, at: float = AT, location=P):
    inc = Incident("I1", "R1", T0 + at, iso_local(T0 + at), pos(*location) if location is not None else None)
    a = analyse(d, PARAMS)
    return a, assess(a, inc, PARAMS, iso_local)


def sit(t0: float, t1: float, at=P, seed: int = 7):
    return stay(t0, t1, at, every=15.0, seed=seed)


def loop_back(t0: float, t1: float, start=P, end=(1520.0, 1200.0)):
    """Ride away and come back to (near) where he started, from t0 to t1."""
    mid = (t0 + t1) / 2
    far = (start[0], start[1] + (t1 - t0) * 2.0)
    return ride(t0, mid, start, far) + ride(mid, t1, far, end)


# ---------------------------------------------------------------- finding the aftermath

def test_a_stay_starting_two_minutes_after_at_the_place_is_the_aftermath():
    d = rider_day(loop_back(AT, AT + 120) + sit(AT + 120, AT + 1020, at=(1520.0, 1200.0))
                  + ride(AT + 1020, T_A + 1500, (1520.0, 1200.0), (1520.0, 2000.0)), next_at=T_A + 1500)
    a, res = run(d)
    am = find_aftermath(a.grid, T0 + AT, pos(*P), PARAMS)
    assert am is not None
    assert abs(am.start - (T0 + AT + 120)) <= 30
    assert abs(am.end - (T0 + AT + 1020)) <= 30
    assert 14.0 <= res["aftermath"]["minutes"] <= 16.0
    assert res["aftermath"]["start_at"] == iso_local(res["aftermath"]["start"])


def test_a_stay_starting_seven_minutes_after_is_not():
    d = rider_day(loop_back(AT, AT + 420) + sit(AT + 420, AT + 1320, at=(1520.0, 1200.0)), next_at=T_A + 1700)
    a, res = run(d)
    assert find_aftermath(a.grid, T0 + AT, pos(*P), PARAMS) is None
    assert "aftermath" not in res
    assert res["phase"] == Phase.IDLE.value  # rule 4: a 15-minute stay in the gap


def test_a_stay_three_hundred_metres_away_is_not():
    away = (1500.0 + 300.0, 1200.0)
    d = rider_day(ride(AT, AT + 90, P, away) + sit(AT + 90, AT + 990, at=away), next_at=T_A + 1500)
    a, res = run(d)
    assert find_aftermath(a.grid, T0 + AT, pos(*P), PARAMS) is None
    assert "aftermath" not in res
    assert res["phase"] == Phase.IDLE.value


def test_a_stay_already_under_way_long_before_the_incident_is_not():
    before = ride(T_A, T_A + 120, C1, P) + sit(T_A + 120, AT)  # sitting at P 4 min before and after
    d = rider_day(sit(AT, AT + 600, seed=8), before=before, next_at=T_A + 1500)
    a, _res = run(d, at=AT + 300)  # 8 minutes into the stay
    assert find_aftermath(a.grid, T0 + AT + 300, pos(*P), PARAMS) is None


# ---------------------------------------------------------------- judging the gap

def test_next_order_25_minutes_after_the_last_gives_connecting():
    d = rider_day(sit(AT, AT + 15 * 60) + ride(AT + 900, T_A + 1500, P, (1500.0, 2000.0)), next_at=T_A + 25 * 60)
    a, res = run(d)
    assert a.timeline.at(T0 + AT).phase is Phase.IDLE  # rules 1-5 for the instant: a 15-min stay
    assert res["phase"] == "connecting" and res["continuous_delivery"] is True
    am = res["aftermath"]
    assert 14.0 <= am["minutes"] <= 15.5 and am["offline_at"] is None
    assert "evidence_needed" not in am
    en = " ".join(res["explanation_en"])
    assert "at the place of the fall" in en and "not counted as a break" in en
    assert "事发地点停留" in "".join(res["explanation"])


def test_going_offline_after_the_fall_does_not_break_online_throughout():
    presence = online(0, AT + 200) + online(AT + 900)  # off during the stay, back on for order B
    d = rider_day(sit(AT, AT + 15 * 60), next_at=T_A + 25 * 60, presence=presence)
    a, res = run(d)
    assert a.timeline.at(T0 + AT).phase is Phase.IDLE
    assert res["phase"] == "connecting"
    assert res["aftermath"]["offline_at"] == iso_local(T0 + AT + 200)
    assert "went offline at" in " ".join(res["explanation_en"])


def test_no_next_order_gives_insufficient_data_with_the_facts():
    presence = online(0, AT + 20 * 60)
    d = rider_day(sit(AT, AT + 25 * 60), presence=presence)
    a, res = run(d)
    assert a.timeline.at(T0 + AT).phase is Phase.IDLE  # "after the last order": the insurer's idle
    assert res["phase"] == "insufficient_data" and res["continuous_delivery"] is None
    am = res["aftermath"]
    assert am["offline_at"] == iso_local(T0 + AT + 20 * 60)
    assert am["minutes_since_previous_order"] == 6.0
    assert am["evidence_needed"] == ["rider_statement_of_destination", "next_order_dispatch_log", "witness"]
    en = res["explanation_en"]
    assert any("6.0 minutes before the incident" in s and "online and moving" in s for s in en)
    assert any("went offline at 10:49:00" in s for s in en)
    assert any("undetermined" in s for s in en)
    assert any("dispatch log" in s and "witness" in s for s in en)
    zh = "".join(res["explanation"])
    assert "待定" in zh and "派单记录" in zh and "目击者" in zh
    assert not any(": idle" in s for s in en)  # the insurer's reading is not the finding


def test_a_real_break_before_the_incident_still_gives_idle():
    q = (1500.0, 600.0)
    before = ride(T_A, T_A + 120, C1, q) + sit(T_A + 120, T_A + 120 + 12 * 60, at=q) + ride(T_A + 840, T_A + 1020, q, P)
    at = T_A + 1020
    d = rider_day(sit(at, at + 15 * 60), before=before, next_at=T_A + 28 * 60)
    _a, res = run(d, at=at)
    assert res["phase"] == "idle" and res["continuous_delivery"] is False
    assert "aftermath" in res  # the fall is still drawn, but the break before it decides
    assert any("stayed within 50 m" in s for s in res["explanation_en"])


def test_without_a_location_the_place_is_where_the_rider_was():
    d = rider_day(sit(AT, AT + 15 * 60), next_at=T_A + 25 * 60)
    _a, res = run(d, location=None)
    assert res["phase"] == "connecting" and res["aftermath"]["place"] == "position_at_reported_time"


def test_the_limits_are_settings():
    from dataclasses import replace

    d = rider_day(loop_back(AT, AT + 120) + sit(AT + 120, AT + 1020, at=(1520.0, 1200.0)), next_at=T_A + 1500)
    a = analyse(d, PARAMS)
    assert find_aftermath(a.grid, T0 + AT, pos(*P), PARAMS) is not None
    assert find_aftermath(a.grid, T0 + AT, pos(*P), replace(PARAMS, aftermath_start_s=60.0)) is None


# ---------------------------------------------------------------- §6 time check

def test_reported_time_off_gives_the_phase_when_he_passed():
    # he passed P riding, 6 min after tA; the report says 8 minutes later, at P
    d = rider_day(ride(AT, AT + 600, P, (1500.0, 3500.0)), next_at=T_A + 25 * 60)
    _a, res = run(d, at=AT + 480)
    lc = res["location_check"]
    assert lc["nearest_distance_m"] <= 50 and lc["minutes_from_reported"] == pytest.approx(-8.0, abs=0.2)
    assert lc["phase_at_nearest"] == "connecting" and lc["continuous_delivery_at_nearest"] is True
    en = " ".join(res["explanation_en"])
    assert "may be off by about 8" in en and "minutes before the reported time" in en
    assert "between consecutive orders" in en and "-8" not in en
    zh = "".join(res["explanation"])
    assert "比报告时间早" in zh and "-8" not in zh


def test_reported_time_off_during_a_delivery_names_the_order():
    d = rider_day(ride(AT, AT + 600, P, (1500.0, 3500.0)), next_at=T_A + 25 * 60)
    _a, res = run(d, at=1000, location=(1000.0, 0.0))  # reported 10:16:40 (at M1); he passed there at 10:21
    lc = res["location_check"]
    assert lc["phase_at_nearest"] == "delivering"
    assert lc["minutes_from_reported"] > 3
    assert "(order A)" in " ".join(res["explanation_en"]) and "after the reported time" in " ".join(res["explanation_en"])


def test_no_time_check_when_he_was_there_at_the_reported_time():
    d = rider_day(sit(AT, AT + 15 * 60), next_at=T_A + 25 * 60)
    _a, res = run(d)
    assert "phase_at_nearest" not in res["location_check"]


def test_no_time_check_within_three_minutes():
    d = rider_day(ride(AT, AT + 600, P, (1500.0, 3500.0)), next_at=T_A + 25 * 60)
    _a, res = run(d, at=AT + 120)
    assert "phase_at_nearest" not in res["location_check"]
    assert "2 minutes before the reported time" in " ".join(res["explanation_en"])


# ---------------------------------------------------------------- the seed case, sitting a quarter of an hour

def test_the_seed_case_with_li_ming_sitting_15_minutes_is_connecting(tmp_path):
    from services.trajectory.adapters.feeds import load_dir
    from tests.seed_fall import write_seed_sat

    feeds = load_dir(write_seed_sat(tmp_path / "seed-sat"), "Asia/Shanghai")
    inc = feeds.incidents[0]
    a = analyse(feeds.days[inc.rider_id], PARAMS)
    assert a.timeline.at(inc.at).phase is Phase.IDLE  # rules 1-5 alone: "a break, not a connection"
    res = assess(a, inc, PARAMS, iso_local)
    assert res["phase"] == "connecting" and res["continuous_delivery"] is True
    assert res["gap_minutes"] == 26.0
    assert 15.0 <= res["aftermath"]["minutes"] <= 19.0
    assert any("stayed" in s and "not counted as a break" in s for s in res["explanation_en"])


def test_inside_an_evidence_window_the_aftermath_is_shown_only_as_far_as_the_window():
    presence = online(0, AT + 20 * 60)
    d = rider_day(sit(AT, AT + 25 * 60), presence=presence)
    a = analyse(d, PARAMS)
    inc = Incident("I1", "R1", T0 + AT, iso_local(T0 + AT), pos(*P))
    w = (T0 + AT - 600, T0 + AT + 600)  # ten minutes each side: he sat on, and went offline, after it
    res = assess(a, inc, PARAMS, iso_local, within=w)
    assert res["phase"] == "insufficient_data"  # the finding is the day's
    am = res["aftermath"]
    assert am["end_at"] == iso_local(w[1]) and am["continues_after_window"] is True
    assert am["offline_at"] is None  # he went offline after the window: not shown
    en = " ".join(res["explanation_en"])
    assert "stayed at least" in en and "did not go offline" not in en and "10:49" not in en
    assert "至少" in "".join(res["explanation"])
    full = assess(a, inc, PARAMS, iso_local)
    assert full["aftermath"]["continues_after_window"] is False and full["aftermath"]["offline_at"]



@pytest.mark.parametrize("window", [1, 7, 50, 99, 300])
def test_stay_end_in_growing_windows_is_the_single_pass_answer(monkeypatch, window):
    """_stay_end looks ahead in windows growing fourfold (speed): whatever the first window, the
    answer is the single pass's -- also when a window ends inside a short absence (55 s away,
    then back: not gone), and with a silence in the stay."""
    import numpy as np

    import services.trajectory.domain.aftermath as am
    from services.trajectory.domain.motion import Grid

    n = 400
    t = T0 + 5.0 * np.arange(n)
    lat = np.full(n, 30.0)
    lon = np.full(n, 120.0)
    lat[100:111] += 0.01  # 11 samples (55 s) a kilometre away, then back
    lat[300:] += 0.01  # gone for good
    known = np.ones(n, dtype=bool)
    known[150:170] = False  # a silence while there
    grid = Grid(t, lat, lon, known, np.zeros(n, dtype=bool), np.zeros(n, dtype=bool))
    monkeypatch.setattr(am, "_STAY_WINDOW", 10**9)
    expected = [am._stay_end(grid, i, (30.0, 120.0), PARAMS, until, 5.0)
                for i in (0, 50, 95, 99) for until in (float("inf"), float(t[250]), float(t[350]))]
    monkeypatch.setattr(am, "_STAY_WINDOW", window)
    got = [am._stay_end(grid, i, (30.0, 120.0), PARAMS, until, 5.0)
           for i in (0, 50, 95, 99) for until in (float("inf"), float(t[250]), float(t[350]))]
    assert got == expected
    assert expected[0] == float(t[299]) + 5.0  # left at sample 300, not at the short absence
