"""The simulator's falls (DATA_CONTRACT §5 rule 6) and reported times off (§6 time check): the
truth it writes, and the engine's answers on such days."""

from __future__ import annotations

import functools
import math
from dataclasses import replace

import numpy as np
import pytest

from services.trajectory.adapters.feeds import load_dir
from services.trajectory.domain.assess import analyse, assess
from services.trajectory.domain.model import Params
from shared.timeutil import iso_local
from tests.support import simulate as sim

pytestmark = pytest.mark.unit

FALLS = replace(sim.preset("dirty"), riders=8, hours=7.0, seed=901, fall_rate=0.3, garbage=0)
TIME_OFF = replace(sim.preset("dirty"), riders=6, hours=7.0, seed=902, time_off_rate=0.5, garbage=0)


@functools.lru_cache(maxsize=4)
def day_for(opts: sim.SimOptions) -> sim.Day:
    return sim.simulate(opts)


def test_falls_stay_15_to_50_minutes_then_stop_or_take_the_next_order():
    day = day_for(FALLS)
    falls = [(r, f) for r in day.riders for f in r.falls]
    assert len(falls) >= 8 and any(f.stopped for _, f in falls) and any(not f.stopped for _, f in falls)
    for r, f in falls:
        assert 15 * 60 - 1 <= f.stay_end - f.t <= 50 * 60 + 1
        x, y = np.interp([f.t, f.stay_end - 1], r.knots_t, r.knots_x), np.interp([f.t, f.stay_end - 1], r.knots_t, r.knots_y)
        assert math.hypot(x[1] - x[0], y[1] - y[0]) < 1.0  # he stays where he fell
        later = [o for o in r.orders if o.accepted > f.t]
        if f.stopped:
            assert not later  # no more orders
            assert r.online and r.online[-1][1] < f.stay_end + 200  # offline during or just after the stay
        else:
            assert later and later[0].accepted >= f.stay_end


def test_fall_truth_follows_rule_6():
    day = day_for(FALLS)
    lines = {t["incident_id"]: t for t in day.truth}
    for r in day.riders:
        for k, f in enumerate(r.falls):
            t = lines[f"INC-{FALLS.seed}-{r.index}-F{k}"]
            assert t["category"] == "aftermath"
            nxt = min((o.accepted for o in r.orders if o.accepted >= f.t_a), default=math.inf)
            expected = ("idle" if f.t - f.t_a > 1800 else "connecting" if nxt - f.t_a <= 1800
                        else "insufficient_data")
            assert t["phase"] == expected  # before the fall he only rode and paused: rule 4 holds
            assert t["continuous_delivery"] == (None if expected == "insufficient_data" else True)


def test_no_ordinary_incident_sits_next_to_a_fall():
    day = day_for(FALLS)
    for fact in day.incident_truth:
        if fact.category == "aftermath":
            continue
        r = day.riders[fact.rider_index]
        assert all(abs(fact.t - f.t) > 180 for f in r.falls)


def test_the_engine_answers_simulated_falls_by_rule_6_and_leaves_the_rest_alone(tmp_path):
    sim.write_day(tmp_path, day_for(FALLS))
    feeds = load_dir(tmp_path, "Asia/Shanghai")
    params = Params()
    without = replace(params, aftermath_start_s=-1e9, aftermath_lead_s=-1e9)  # rules 1-5 only
    cache = {rid: analyse(d, params) for rid, d in feeds.days.items()}
    got = {i.incident_id: assess(cache[i.rider_id], i, params, iso_local) for i in feeds.incidents}
    plain = {i.incident_id: assess(cache[i.rider_id], i, without, iso_local) for i in feeds.incidents}
    ok = n = before = 0
    for t in day_for(FALLS).truth:
        g, p = got[t["incident_id"]], plain[t["incident_id"]]
        if t["category"] == "aftermath":
            n += 1
            ok += g["phase"] == t["phase"] and g["continuous_delivery"] == t["continuous_delivery"]
            before += p["phase"] == t["phase"] and p["continuous_delivery"] == t["continuous_delivery"]
        else:  # rule 6 applies to the incident's own aftermath only: every other answer is rules 1-5's
            assert (g["phase"], g["continuous_delivery"]) == (p["phase"], p["continuous_delivery"]), t
            assert "aftermath" not in g
    assert n >= 8 and ok >= 0.9 * n and before < ok, (ok, before, n)


def test_reported_times_off_are_at_the_right_place_and_carry_the_phase_then():
    day = day_for(TIME_OFF)
    off = [(fact, line) for fact, line in zip(day.incident_truth, day.truth, strict=True) if "time_off_s" in line]
    assert 0.3 * len(day.truth) <= len(off) <= 0.7 * len(day.truth)
    for fact, line in off:
        r = day.riders[fact.rider_index]
        assert 240 - 1 <= abs(line["time_off_s"]) <= 720 + 1 or fact.location_offset_s != -line["time_off_s"]
        assert line["phase_at_place"] == r.phase_at(fact.t + fact.location_offset_s)
        assert line["phase"] == r.phase_at(fact.t)  # the truth stays the reported time's
        assert line["phase_at_place"] in line["phases_during_visit"] or not line["phases_during_visit"]
