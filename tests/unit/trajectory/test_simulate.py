"""Tests of the rider-day simulator: formats, determinism, clocks, coordinates and truth.

The truth is checked against a brute-force reading of DATA_CONTRACT.md section 5 written
here independently of the simulator (dense sampling, haversine distances) and fed only
with the simulator's ground truth: the true path, true doors and the written event times.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pendulum
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.geo import Crs, haversine_m, local_xy_m, to_wgs84
from tests.support import simulate as sim
from tests.support.simulate import Day, Dirt, RiderTruth, SimOptions

pytestmark = pytest.mark.unit

SMALL = replace(sim.preset("dirty"), riders=2, hours=6.0, garbage=12)
FILES = ("platform.jsonl", "gps.jsonl", "incidents.jsonl", "truth.jsonl")


@functools.lru_cache(maxsize=32)
def day_for(opts: SimOptions) -> Day:
    return sim.simulate(opts)


# --- A strict reader of the contract's formats ------------------------------------------

_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)$")
_NAIVE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


def parse_ts(value: Any) -> int:
    """Epoch milliseconds of a contract timestamp; ValueError for anything else."""
    if isinstance(value, bool):
        raise ValueError("bool")
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    if _ISO.match(value):
        dt = pendulum.parse(value)
    elif _NAIVE.match(value):
        dt = pendulum.parse(value, tz="Asia/Shanghai")
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    assert isinstance(dt, pendulum.DateTime)
    return round(dt.timestamp() * 1000)


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _point_ok(p: Any) -> bool:
    return (isinstance(p, dict) and _num(p.get("lat")) and _num(p.get("lon"))
            and abs(p["lat"]) <= 90 and abs(p["lon"]) <= 180)


def _ts_ok(v: Any) -> bool:
    try:
        parse_ts(v)
    except (ValueError, pendulum.parsing.exceptions.ParserError):
        return False
    return True


def valid_gps(o: Any) -> bool:
    return (isinstance(o, dict) and isinstance(o.get("rider_id"), str) and _ts_ok(o.get("ts"))
            and _point_ok(o) and o.get("crs", "wgs84") in ("wgs84", "gcj02", "bd09")
            and all(_num(o[k]) for k in ("accuracy_m", "speed_mps", "heading_deg") if k in o))


ORDER_TYPES = {"accepted", "arrived_merchant", "picked_up", "delivered", "cancelled"}


def valid_platform(o: Any) -> bool:
    if not (isinstance(o, dict) and isinstance(o.get("rider_id"), str)
            and isinstance(o.get("platform"), str) and _ts_ok(o.get("ts"))):
        return False
    if o.get("kind") == "presence":
        return o.get("type") in ("online", "offline")
    return (o.get("kind") == "order" and o.get("type") in ORDER_TYPES
            and isinstance(o.get("order_id"), str) and _point_ok(o.get("merchant"))
            and _point_ok(o.get("customer")))


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


# --- An independent brute-force reading of the phase rules ---------------------------------


def online_at(r: RiderTruth, t: float) -> bool:
    state: dict[str, bool] = {}
    for ts, platform, on in sorted(r.presence):
        if ts <= t:
            state[platform] = on
    return any(state.values())


def true_latlon(r: RiderTruth, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return sim.xy_to_latlon(np.interp(t, r.knots_t, r.knots_x), np.interp(t, r.knots_t, r.knots_y))


@functools.lru_cache(maxsize=4096)
def _gap_is_connecting(r: RiderTruth, ta: float, tb: float) -> bool:
    if tb - ta > 1800.0:
        return False
    changes = [ts for ts, _, _ in r.presence if ta < ts < tb]
    if not all(online_at(r, u) for u in [ta, *changes]):
        return False
    t = np.arange(ta, tb + 1e-9, 2.0)
    lat, lon = true_latlon(r, t)
    d = haversine_m(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
    out = np.triu(d > 50.0, 1)
    first_out = np.where(out.any(axis=1), out.argmax(axis=1), t.size)
    return bool((t[first_out - 1] - t).max() < 600.0)


def brute_phase(r: RiderTruth, t: float, *, latched: bool = True) -> str:
    active = [o for o in r.orders if o.accepted <= t < o.end]
    if active:
        if any(o.picked_up is not None and o.picked_up <= t for o in active):
            return "delivering"
        for o in active:
            if o.arrived_event is not None and o.arrived_event <= t:
                return "at_merchant"
            mlat, mlon = sim.xy_to_latlon(*o.merchant_xy)
            ts = np.append(np.arange(o.accepted, t, 0.25), t) if latched else np.array([t])
            lat, lon = true_latlon(r, ts)
            if (haversine_m(lat, lon, mlat, mlon) <= 50.0).any():
                return "at_merchant"
        return "to_pickup"
    if not online_at(r, t):
        return "offline"
    ended = [o.end for o in r.orders if o.end <= t]
    later = [o.accepted for o in r.orders if o.accepted > t]
    if not ended or not later:
        return "idle"
    return "connecting" if _gap_is_connecting(r, max(ended), min(later)) else "idle"


# --- Determinism and formats ---------------------------------------------------------------


def test_same_seed_writes_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        sim.write_day(tmp_path / name, sim.simulate(replace(SMALL, seed=seed)))
    for f in FILES:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a" / "gps.jsonl").read_bytes() != (tmp_path / "c" / "gps.jsonl").read_bytes()


def test_generate_day_is_a_pure_function_of_the_generator() -> None:
    a = sim.generate_day(np.random.default_rng(3), SMALL)
    b = sim.generate_day(np.random.default_rng(3), SMALL)
    assert a.platform == b.platform and a.truth == b.truth and a.incidents == b.incidents
    assert np.array_equal(a.gps.ts_ms, b.gps.ts_ms) and np.array_equal(a.gps.lat, b.gps.lat)


def test_every_line_parses_except_the_recorded_garbage(tmp_path: Path) -> None:
    day = day_for(SMALL)
    sim.write_day(tmp_path, day)
    for name, valid in (("platform.jsonl", valid_platform), ("gps.jsonl", valid_gps)):
        bad = {g.line_no: g for g in day.garbage if g.file == name}
        assert len(bad) == SMALL.garbage
        lines = read_lines(tmp_path / name)
        for no, line in enumerate(lines, start=1):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                assert no in bad, f"{name}:{no} is not JSON"
                continue
            assert valid(obj) == (no not in bad), f"{name}:{no} {bad.get(no)} {line}"
            if no in bad:
                assert bad[no].text == line
    assert {g.kind for g in day.garbage} >= {"not_json", "missing_field", "bad_coord", "bad_ts"}
    for name in ("incidents.jsonl", "truth.jsonl"):
        assert all(json.loads(line) for line in read_lines(tmp_path / name))


def test_files_hold_exactly_the_in_memory_records(tmp_path: Path) -> None:
    day = day_for(SMALL)
    sim.write_day(tmp_path, day)

    def good(name: str) -> list[Any]:
        bad = {g.line_no for g in day.garbage if g.file == name}
        lines = read_lines(tmp_path / name)
        return [json.loads(x) for i, x in enumerate(lines, start=1) if i not in bad]

    assert good("platform.jsonl") == day.platform
    assert good("gps.jsonl") == day.gps.records()
    assert good("incidents.jsonl") == day.incidents
    assert good("truth.jsonl") == day.truth
    assert [t["incident_id"] for t in day.truth] == [i["incident_id"] for i in day.incidents]


@settings(max_examples=200, deadline=None)
@given(ms=st.integers(1_700_000_000_000, 1_900_000_000_000), style=st.integers(0, 3))
def test_timestamps_render_and_parse_back(ms: int, style: int) -> None:
    codes = np.array([style], dtype=np.int8)
    q = sim.quantize_ms(np.array([ms], dtype=np.int64), codes)
    (text,) = sim.format_ts(q, codes)
    assert parse_ts(text) == int(q[0])
    assert abs(int(q[0]) - ms) <= 500


def test_mixed_style_day_uses_every_timestamp_style() -> None:
    day = day_for(replace(SMALL, riders=4))
    styles = Counter(day.gps.style.tolist())
    assert set(styles) == {0, 1, 2, 3}
    shapes = {type(p["ts"]).__name__ + str(len(str(p["ts"]))) for p in day.platform}
    assert len(shapes) >= 2


# --- Clocks and coordinates --------------------------------------------------------------


NOISELESS = replace(
    SMALL, riders=3, garbage=0,
    dirt=replace(Dirt.none(), gps_noise=False, max_skew_s=300.0, platform_crs=("gcj02",),
                 geocode_error_m=(10.0, 60.0)),
)


@pytest.mark.parametrize("crs", ["gcj02", "bd09", "wgs84"])
def test_gps_lines_are_the_true_path_on_the_skewed_phone_clock(tmp_path: Path, crs: Crs) -> None:
    """gps_ts = true_ts + skew, and converting each line's crs back lands within 1 m."""
    day = sim.simulate(replace(NOISELESS, dirt=replace(NOISELESS.dirt, gps_crs=(crs,))))
    sim.write_day(tmp_path, day)
    riders = {r.rider_id: r for r in day.riders}
    assert any(abs(r.skew_s) > 5.0 for r in day.riders)
    assert {r.gps_crs for r in day.riders} == {crs}
    rows: dict[str, list[tuple[int, float, float, str]]] = {}
    for line in read_lines(tmp_path / "gps.jsonl"):
        o = json.loads(line)
        rows.setdefault(o["rider_id"], []).append(
            (parse_ts(o["ts"]), o["lat"], o["lon"], o.get("crs", "wgs84")))
    for rid, rs in rows.items():
        r = riders[rid]
        ms = np.array([x[0] for x in rs], dtype=np.float64)
        assert {x[3] for x in rs} == {crs}
        lat, lon = to_wgs84(np.array([x[1] for x in rs]), np.array([x[2] for x in rs]), crs)
        err = haversine_m(lat, lon, *r.position(ms / 1000.0 - r.skew_s))
        assert err.max() < 1.0, (rid, err.max())
        if abs(r.skew_s) > 30.0:  # the opposite sign does not fit while the rider moves
            wrong = haversine_m(lat, lon, *r.position(ms / 1000.0 + r.skew_s))
            assert np.percentile(wrong, 75) > 50.0


def test_dirty_gps_columns_keep_the_skew_exactly() -> None:
    day = day_for(SMALL)
    skew_ms = np.array([round(r.skew_s * 1000) for r in day.riders])[day.gps.rider]
    assert np.array_equal(day.gps.ts_ms - skew_ms, np.rint(day.gps.true_t * 1000).astype(np.int64))
    for r in day.riders:
        sel = day.gps.rider == r.index
        lat, lon = r.position(day.gps.true_t[sel])
        assert np.allclose(lat, day.gps.true_lat[sel]) and np.allclose(lon, day.gps.true_lon[sel])


def test_platform_geocodes_in_gcj02_are_off_the_true_door_by_the_set_error() -> None:
    day = sim.simulate(NOISELESS)
    doors = {o.order_id: o for r in day.riders for o in r.orders}
    seen = 0
    for p in day.platform:
        if p["kind"] != "order":
            continue
        assert p["crs"] == "gcj02"
        o = doors[p["order_id"]]
        lat, lon = to_wgs84(p["merchant"]["lat"], p["merchant"]["lon"], "gcj02")
        d = float(haversine_m(lat, lon, *sim.xy_to_latlon(*o.merchant_xy)))
        assert 9.0 <= d <= 61.0
        seen += 1
    assert seen > 20


def test_truth_uses_the_platform_times_as_written(tmp_path: Path) -> None:
    day = day_for(SMALL)
    sim.write_day(tmp_path, day)
    orders = {o.order_id: o for r in day.riders for o in r.orders}
    presence: dict[tuple[str, str, bool], list[float]] = {
        (r.rider_id, p, on): [] for r in day.riders for _, p, on in r.presence
    }
    for r in day.riders:
        for t, p, on in r.presence:
            presence[(r.rider_id, p, on)].append(t)
    field = {"accepted": "accepted", "arrived_merchant": "arrived_event",
             "picked_up": "picked_up", "delivered": "delivered", "cancelled": "cancelled"}
    for line in read_lines(tmp_path / "platform.jsonl"):
        o = _try_json(line)
        if not valid_platform(o):
            continue
        t = parse_ts(o["ts"]) / 1000.0
        if o["kind"] == "order":
            assert getattr(orders[o["order_id"]], field[o["type"]]) == t
        else:
            assert t in presence[(o["rider_id"], o["platform"], o["type"] == "online")]


def test_local_frame_matches_shared_geo() -> None:
    x, y = np.array([-2500.0, 0.0, 3100.0]), np.array([1800.0, 0.0, -2700.0])
    lat, lon = sim.xy_to_latlon(x, y)
    bx, by = local_xy_m(lat, lon, sim.ORIGIN_LAT, sim.ORIGIN_LON)
    assert np.allclose(bx, x, atol=1e-6) and np.allclose(by, y, atol=1e-6)


# --- Realism -----------------------------------------------------------------------------------


def test_true_path_rides_at_street_speeds() -> None:
    for r in day_for(SMALL).riders:
        v = np.hypot(np.diff(r.knots_x), np.diff(r.knots_y)) / np.diff(r.knots_t)
        moving = v > 1e-9
        assert (np.diff(r.knots_t) > 0).all()
        assert ((v[moving] >= 3.0 - 1e-6) & (v[moving] <= 8.0 + 1e-6)).all()
        lat, lon = r.position(r.knots_t)
        assert (haversine_m(lat, lon, 23.74, 114.70) < 7000.0).all()


def test_dirty_gps_has_the_real_world_defects() -> None:
    day = day_for(replace(SMALL, riders=4, hours=10.0))
    g = day.gps
    assert g.duplicate.any() and (g.kind == 1).any() and (g.kind == 2).any()
    acc = g.accuracy_m[np.isfinite(g.accuracy_m)]
    assert acc.min() >= 3.0 and acc.max() >= 50.0
    backwards = outages = 0
    for r in day.riders:
        ts = g.ts_ms[g.rider == r.index] / 1000.0
        dt = np.diff(ts)
        backwards += int((dt < 0).sum())
        outages += int((np.diff(np.sort(ts)) > 180.0).sum())
        still = np.diff(np.sort(ts))
        assert ((still >= 15.0) & (still <= 60.5)).any()  # slower sampling when standing
    assert backwards > 0 and outages > 0
    assert np.isnan(g.speed_mps).any() and np.isfinite(g.speed_mps).any()
    assert np.isfinite(g.heading_deg).any()


def test_shift_shape_orders_stacks_cancels_platforms() -> None:
    days = [day_for(replace(SMALL, riders=3, hours=10.0, seed=s)) for s in (1, 2)]
    riders = [r for d in days for r in d.riders]
    orders = [o for r in riders for o in r.orders]
    assert any(o.cancelled is not None for o in orders)
    assert any(o.arrived_event is None and o.picked_up is not None for o in orders)
    assert any(o.arrived_event is not None for o in orders)
    stacked = sum(
        1 for r in riders for a, b in zip(r.orders[:-1], r.orders[1:], strict=True)
        if b.accepted < a.end
    )
    assert stacked > 0
    assert any(len(r.platforms) == 2 for r in riders)
    for o in orders:
        if o.picked_up is not None and o.door_arrival is not None:
            assert o.door_arrival < o.picked_up  # the rider waits at the merchant
    # an offline spell between two orders, not just before and after the shift
    assert any(len(r.online) > 1 for r in riders)


# --- Truth ----------------------------------------------------------------------------------


SEEDS = (1, 2, 3, 4)


@pytest.mark.parametrize("seed", SEEDS)
def test_incident_truth_follows_the_phase_rules(seed: int) -> None:
    day = day_for(replace(SMALL, seed=seed))
    truth = {t["incident_id"]: t for t in day.truth}
    for f in day.incident_truth:
        r = day.riders[f.rider_index]
        line = truth[f.incident_id]
        assert line["phase"] == f.phase == brute_phase(r, f.t), f
        assert brute_phase(r, f.t, latched=False) == f.phase
        assert line["continuous_delivery"] is (f.phase in sim.CONTINUOUS_PHASES)
        assert line["category"] == f.category
        if f.category == "clean":
            for k in range(-118, 119, 4):
                assert brute_phase(r, f.t + k) == f.phase, (f, k)
        else:
            near = [f.t + k for k in range(-120, 121)]
            assert any(brute_phase(r, u) != f.phase or brute_phase(r, u, latched=False) != f.phase
                       for u in near), f


def test_at_merchant_starts_where_the_rider_enters_50_m_of_the_true_door() -> None:
    checked = 0
    for s in SEEDS:
        for r in day_for(replace(SMALL, seed=s)).riders:
            for o in r.orders:
                if o.reach is None or (o.arrived_event is not None and o.arrived_event <= o.reach):
                    continue
                mlat, mlon = sim.xy_to_latlon(*o.merchant_xy)
                at, before = (haversine_m(*r.position(t), mlat, mlon) for t in (o.reach, o.reach - 1))
                if o.reach == o.accepted:
                    assert at <= 50.0 + 1e-6
                else:
                    assert abs(float(at) - 50.0) < 0.5 and before > 50.0
                    checked += 1
    assert checked > 20


def test_timeline_matches_brute_force_at_random_instants_and_beside_every_change() -> None:
    day = day_for(replace(SMALL, seed=5))
    rng = np.random.default_rng(0)
    for r in day.riders:
        changes = np.asarray(r.changes)
        beside = np.concatenate([changes - 2.0, changes + 2.0])
        checked = 0
        for t in np.concatenate([rng.uniform(*r.window, 300), beside]):
            gap = r.gap_at(t)
            if np.abs(changes - t).min() < 1.5 or (gap is not None and gap.ambiguous):
                continue
            assert r.phase_at(t) == brute_phase(r, t), (r.rider_id, t)
            span = next(s for s in r.timeline if s.start <= t < s.end)
            assert span.phase == r.phase_at(t)
            checked += 1
        assert checked > 200 + len(changes)


def test_every_phase_and_both_categories_occur() -> None:
    lines = [t for s in SEEDS for t in day_for(replace(SMALL, seed=s)).truth]
    assert {t["phase"] for t in lines} == set(sim.PHASES)
    assert {t["category"] for t in lines} == {"clean", "boundary"}
    per_rider = Counter(t["incident_id"].rsplit("-", 1)[0] for t in lines)
    assert min(per_rider.values()) == SMALL.incidents_per_rider


def test_gaps_cover_every_reason_to_be_idle_and_are_rarely_ambiguous() -> None:
    riders = [r for s in (*SEEDS, 5, 6) for r in day_for(replace(SMALL, seed=s, hours=10.0)).riders]
    gaps = [g for r in riders for g in r.gaps]
    for r in riders:
        for g in r.gaps:
            if not g.ambiguous:
                assert g.phase == ("connecting" if _gap_is_connecting(r, g.start, g.end) else "idle")
    connecting = [g for g in gaps if g.phase == "connecting"]
    assert connecting and all(
        g.end - g.start <= 1800.0 and g.online_throughout and g.dwell_s < 600.0 for g in connecting
    )
    assert any(g.dwell_s >= 300.0 for g in connecting)  # a short stop does not break it
    idle = [g for g in gaps if g.phase == "idle"]
    assert any(g.end - g.start > 1800.0 and g.online_throughout for g in idle)  # too long
    assert any(g.end - g.start <= 1800.0 and g.online_throughout for g in idle)  # a dwell
    assert any(not g.online_throughout for g in idle)  # went offline
    assert sum(g.ambiguous for g in gaps) <= 0.05 * len(gaps)


def test_incident_locations_are_where_the_rider_was() -> None:
    day = day_for(replace(SMALL, riders=4, seed=9))
    with_location = [f for f in day.incident_truth if f.location is not None]
    assert with_location and any(f.location_offset_s != 0.0 for f in with_location)
    for f in with_location:
        assert f.location is not None
        r = day.riders[f.rider_index]
        lat, lon = r.position(f.t + f.location_offset_s)
        assert float(haversine_m(f.location[0], f.location[1], lat, lon)) < 40.0
    for rec in day.incidents:
        if "location" in rec:
            assert rec.get("crs", "wgs84") in ("wgs84", "gcj02")


# --- Command line and speed -----------------------------------------------------------------


def test_cli_writes_a_day_and_prints_only_a_summary_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "day"
    argv = ["simulate", str(out), "--riders", "2", "--hours", "3", "--seed", "4",
            "--ts-style", "epoch", "--clean", "--garbage", "3"]
    assert sim.main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and "2 riders" in captured.err
    for f in FILES:
        assert (out / f).exists()
    gps = read_lines(out / "gps.jsonl")
    ok = [json.loads(x) for x in gps if x.startswith("{") and valid_gps(_try_json(x))]
    assert len(gps) - len(ok) == 3
    assert all(isinstance(o["ts"], int) and "crs" not in o or o["crs"] == "wgs84" for o in ok)


def _try_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def test_presets_and_option_overrides() -> None:
    bench = sim.preset("bench")
    assert (bench.riders, bench.interval_s, bench.ts_style, bench.garbage) == (130, 5.0, "iso", 0)
    assert sim.preset("clean").dirt == Dirt.none()
    args = sim._parser().parse_args(["out", "--preset", "bench", "--riders", "5", "--clean"])
    opts = sim.options_from_args(args)
    assert opts.riders == 5 and opts.dirt == Dirt.none() and opts.interval_s == 5.0
    with pytest.raises(ValueError):
        sim.preset("filthy")


@pytest.mark.slow
def test_bench_preset_yields_about_a_million_pings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.perf_counter()
    day = sim.simulate(sim.preset("bench"))
    generated = time.perf_counter() - started
    sim.write_day(tmp_path, day)
    total = time.perf_counter() - started
    with (tmp_path / "gps.jsonl").open("rb") as f:
        lines = sum(1 for _ in f)
    with capsys.disabled():
        print(f"\nbench preset: {lines} GPS lines, generated in {generated:.1f} s, "
              f"written in {total - generated:.1f} s, total {total:.1f} s")
    assert abs(lines - 1_000_000) <= 100_000
    assert lines == len(day.gps)
