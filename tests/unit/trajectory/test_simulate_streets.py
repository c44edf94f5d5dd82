"""The simulator's harder streets (issues 15 and 17), as separate options: indoor outages in
stays, GPS drift episodes, pins off the door, platforms without arrived_merchant. Each switch
changes only what it says: the rest of the day is the very day generated without it."""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import pytest

from shared.geo import haversine_m
from tests.support import simulate as sim
from tests.support.simulate import Day, Dirt, SimOptions

pytestmark = pytest.mark.unit

BASE = replace(sim.preset("dirty"), riders=3, hours=6.0, garbage=0, seed=7)


@functools.lru_cache(maxsize=8)
def day_for(opts: SimOptions) -> Day:
    return sim.simulate(opts)


def _with(**dirt: object) -> SimOptions:
    return replace(BASE, dirt=replace(BASE.dirt, **dirt))


def test_indoor_outages_fall_in_stays_one_to_three_each():
    r = day_for(BASE).riders[0]
    stays = sim._stays(r.knots_t, r.knots_x, r.knots_y, 240.0)
    assert stays and all(b - a >= 240.0 for a, b in stays)
    out = sim._indoor_outages(np.random.default_rng(3), replace(Dirt(), indoor_outage_rate=1.0),
                              r.knots_t, r.knots_x, r.knots_y)
    per_stay = [[o for o in out if a <= o[0] and o[1] <= b] for a, b in stays]
    assert sum(map(len, per_stay)) == len(out)  # every outage inside a stay
    assert all(1 <= len(p) <= 3 for p in per_stay)  # rate 1: every stay gets one to three
    for a, b in out:
        assert 0 < b - a <= 6 * 60 + 1e-6
    none = sim._indoor_outages(np.random.default_rng(3), replace(Dirt(), indoor_outage_rate=0.0),
                               r.knots_t, r.knots_x, r.knots_y)
    assert none == []


def test_indoor_outages_remove_fixes_and_leave_the_rest_of_the_day_alone():
    plain, indoor = day_for(BASE), day_for(_with(indoor_outage_rate=1.0))
    assert plain.truth == indoor.truth and plain.platform == indoor.platform
    assert plain.incidents == indoor.incidents
    kept = set(indoor.gps.true_t.tolist())
    assert kept < set(plain.gps.true_t.tolist())  # the same fixes, fewer of them
    for rp, ri in zip(plain.riders, indoor.riders, strict=True):
        assert set(rp.phone_off) != set(ri.phone_off)
        mine = indoor.gps.true_t[indoor.gps.rider == ri.index]
        assert not any(((mine >= a) & (mine < b)).any() for a, b in ri.phone_off)


def test_drift_moves_fixes_40_to_120_m_for_minutes_and_nothing_else():
    plain, drifted = day_for(BASE), day_for(_with(drift_per_hour=2.0))
    assert plain.truth == drifted.truth
    assert np.array_equal(plain.gps.true_t, drifted.gps.true_t)
    off = haversine_m(plain.gps.meas_lat, plain.gps.meas_lon, drifted.gps.meas_lat, drifted.gps.meas_lon)
    assert off.max() <= 120.0 + 1e-6 and off.max() >= 40.0
    moved = off > 1.0
    assert 0 < moved.mean() < 0.5
    # an episode lasts minutes: the moved fixes of one rider span at least a minute
    assert np.ptp(plain.gps.true_t[moved & (plain.gps.rider == plain.gps.rider[moved][0])]) >= 60.0


def test_harder_preset_pins_off_the_door_and_no_arrival_events():
    d = day_for(replace(sim.preset("harder"), riders=3, hours=6.0, garbage=0, seed=7))
    assert d.options.dirt.geocode_error_m == (60.0, 80.0) and d.options.dirt.drift_per_hour > 0
    assert not [r for r in d.platform if r["type"] == "arrived_merchant"]


def test_street_options_from_the_command_line():
    args = sim._parser().parse_args(["out", "--indoor-outages", "0.5", "--pin-offset", "70",
                                     "--drift-per-hour", "1", "--no-arrival-events"])
    dirt = sim.options_from_args(args).dirt
    assert dirt.indoor_outage_rate == 0.5 and dirt.geocode_error_m == (60.0, 80.0)
    assert dirt.drift_per_hour == 1.0 and dirt.arrived_merchant_rates == (0.0,)
    assert sim.options_from_args(sim._parser().parse_args(["out"])).dirt == Dirt()
