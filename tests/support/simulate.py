"""Rider-day simulator: realistic rider feeds with exact ground truth.

A simulated day is a set of riders working in Heyuan. For each rider the simulator

1. plans a shift: presence on one or two platforms, orders (single, stacked, cancelled),
   the gaps between them (quick connections, long waits, dwells, meal breaks, offline
   breaks) and rides a *true path* through it (piecewise linear, street-like L-shaped legs
   with a little wobble, 3-8 m/s);
2. observes that day the way the real world does: platform events on the platform clock,
   GPS pings on a skewed phone clock with noise, outliers, outages, duplicates, reordering,
   several coordinate systems and timestamp styles;
3. computes the truth for a set of incident instants from its own ground truth (the true
   path before noise, the true merchant doors, the platform times as written) by the phase
   rules of DATA_CONTRACT.md section 5.

How the rules are read (the engine has to agree with these):

* ``at_merchant`` is latched: it holds from the first instant after ``accepted`` at which
  the true position is within 50 m of the true merchant door (or the ``arrived_merchant``
  event, if earlier) until pick-up. Incidents are only placed where this agrees with the
  instantaneous reading ("within 50 m now, or arrived_merchant already sent").
* A *dwell* is a stretch of the true path, clipped to the gap, that stays within 50 m of
  its first point. Gaps where readings with 25 m or 100 m would disagree, or that sit
  within 30 s of a threshold, are flagged ``ambiguous`` and get no incidents.
* ``gps_ts = true_ts + skew`` (a positive skew means the phone clock runs ahead).

Everything here is pure: ``generate_day(rng, opts)`` returns records in memory and
``write_day(out_dir, day)`` writes them. ``main`` is the command line.
"""

from __future__ import annotations

import argparse
import bisect
import datetime
import math
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import orjson
import pendulum

from shared.geo import EARTH_RADIUS_M, Crs, from_wgs84

FloatArr: TypeAlias = npt.NDArray[np.float64]
IntArr: TypeAlias = npt.NDArray[np.int64]
Record: TypeAlias = dict[str, Any]
XY: TypeAlias = tuple[float, float]
Span: TypeAlias = tuple[float, float]
TsStyle = Literal["iso", "z", "naive", "epoch", "mixed"]

# --- Places, clocks and the rules' parameters -------------------------------------------

ORIGIN_LAT, ORIGIN_LON = 23.74, 114.70  # Heyuan; the local metric frame is centred here
LOCAL_TZ = "Asia/Shanghai"
LOCAL_OFFSET_S = 8 * 3600  # Asia/Shanghai has no DST
PLATFORMS: tuple[str, ...] = ("meituan", "eleme")
ORDER_PREFIX = {"meituan": "ME", "eleme": "EL"}

PHASES: tuple[str, ...] = (
    "at_merchant", "connecting", "delivering", "idle", "offline", "to_pickup",
)
CONTINUOUS_PHASES = frozenset({"to_pickup", "at_merchant", "delivering", "connecting"})
MERCHANT_RADIUS_M = 50.0
DWELL_RADIUS_M = 50.0
DWELL_MIN_S = 600.0
CONNECT_MAX_S = 1800.0
BOUNDARY_S = 120.0
AMBIGUITY_MARGIN_S = 30.0

TS_STYLES: tuple[str, ...] = ("iso", "z", "naive", "epoch")
_SECOND_STYLES = np.array([True, False, True, False])  # styles written to the whole second
GPS_CRS_FIELD: tuple[str | None, ...] = (None, "wgs84", "gcj02", "bd09")  # code 0: no field
_GPS_CRS: tuple[Crs, ...] = ("wgs84", "wgs84", "gcj02", "bd09")  # the crs of each code

_M_PER_DEG = math.pi / 180.0 * EARTH_RADIUS_M
_COS_ORIGIN = math.cos(math.radians(ORIGIN_LAT))
_CITY_RADIUS_M = 5500.0


# --- Options --------------------------------------------------------------------------


@dataclass(frozen=True)
class Dirt:
    """How dirty the observed feeds are. Every switch off (0, empty, wgs84) is clean."""

    geocode_error_m: tuple[float, float] = (10.0, 60.0)  # platform merchant/customer vs door
    platform_crs: tuple[Crs, ...] = ("gcj02",)  # per rider and platform
    gps_crs: tuple[Crs, ...] = ("wgs84", "gcj02", "bd09")  # per rider
    arrived_merchant_rates: tuple[float, ...] = (1.0, 0.5, 0.0)  # per rider and platform
    early_arrival_tap_rate: float = 0.03  # arrived_merchant sent before reaching the door
    max_skew_s: float = 300.0  # phone clock: gps_ts = true_ts + skew, |skew| <= this
    gps_noise: bool = True  # False: pings sit exactly on the true path
    accuracy_m: tuple[float, float] = (3.0, 20.0)
    accuracy_field_rate: float = 0.97
    big_error_rate: float = 0.004  # accuracy 50-150 m, noise to match
    teleport_rate: float = 0.001  # single points 300 m to 3 km off, normal-looking accuracy
    duplicate_rate: float = 0.01
    reorder_rate: float = 0.01  # a line moved 1-6 lines later
    outages_per_rider: float = 1.5  # mean number of GPS outages (tunnels, phone off)
    outage_minutes: tuple[float, float] = (3.0, 12.0)
    gps_off_when_offline: float = 0.5  # chance the phone stops sending in an offline break
    platform_reorder_rate: float = 0.03  # adjacent platform lines swapped
    speed_field_rate: float = 0.6
    heading_field_rate: float = 0.3
    incident_crs_rate: float = 0.1  # incident location given in gcj02
    # indoor outages (issue 17): GPS lost for minutes inside malls, food courts, buildings
    indoor_outage_rate: float = 0.0  # share of stays of indoor_min_stay_s or more that get some
    indoor_outage_count: tuple[int, int] = (1, 3)  # outages per such stay
    indoor_outage_minutes: tuple[float, float] = (2.0, 6.0)
    indoor_min_stay_s: float = 240.0
    # GPS drift (issue 15, "harder streets"): the fix wanders off the true position and back
    drift_per_hour: float = 0.0  # mean number of drift episodes per hour of GPS
    drift_m: tuple[float, float] = (40.0, 120.0)  # peak distance from the true position
    drift_minutes: tuple[float, float] = (2.0, 6.0)

    @classmethod
    def none(cls) -> Dirt:
        """Clean feeds: WGS-84 everywhere, doors geocoded exactly, no skew, no outliers."""
        return cls(
            geocode_error_m=(0.0, 0.0), platform_crs=("wgs84",), gps_crs=("wgs84",),
            arrived_merchant_rates=(1.0,), early_arrival_tap_rate=0.0, max_skew_s=0.0,
            accuracy_m=(3.0, 12.0), accuracy_field_rate=1.0, big_error_rate=0.0,
            teleport_rate=0.0, duplicate_rate=0.0, reorder_rate=0.0, outages_per_rider=0.0,
            gps_off_when_offline=0.0, platform_reorder_rate=0.0, speed_field_rate=0.5,
            heading_field_rate=0.3, incident_crs_rate=0.0,
        )


@dataclass(frozen=True)
class SimOptions:
    """Everything that shapes a simulated day. Generation is deterministic for ``seed``."""

    riders: int = 3
    date: str = "2026-05-14"  # local date the shifts start on
    hours: float = 10.7  # mean shift length per rider (each rider varies by +-8 %)
    interval_s: float = 4.0  # mean GPS interval while moving (each gap 0.8-1.2 x this)
    still_interval_s: tuple[float, float] | None = (15.0, 60.0)  # standing still; None: as moving
    ts_style: TsStyle = "mixed"  # mixed: per rider and feed, one style or one per line
    seed: int = 1
    dirt: Dirt = Dirt()
    garbage: int = 0  # bad lines inserted into each of platform.jsonl and gps.jsonl
    incidents_per_rider: int = 12
    boundary_rate: float = 0.15  # share of incidents aimed within 2 min of a phase change
    location_rate: float = 0.5
    stacking_rate: float = 0.2
    cancel_rate: float = 0.06
    second_platform_rate: float = 0.5
    offline_breaks: bool = True
    interleave_riders: bool = False  # GPS lines of all riders sorted by time, not grouped
    # falls between orders (DATA_CONTRACT section 5 rule 6): share of gaps after an order in which
    # the rider falls, stays 15-50 min, then stops working (share fall_stop_rate) or takes the
    # next order; each fall is one more incident, category "aftermath". 0: no falls, no draws.
    fall_rate: float = 0.0
    fall_stop_rate: float = 0.5
    # reported times off (section 6 time check): share of incidents reported at the right place
    # but 4-12 min off; their truth lines also carry the phase when the rider was there.
    time_off_rate: float = 0.0
    time_off_minutes: tuple[float, float] = (4.0, 12.0)


PRESETS: tuple[str, ...] = ("clean", "dirty", "bench", "indoor", "harder", "streets")


def preset(name: str) -> SimOptions:
    """Named option sets: ``clean``, ``dirty`` (the default day), ``bench`` (~1M pings),
    ``indoor`` (dirty, and 1-3 indoor outages of 2-6 min in 80 % of the stays of 4 min or more)
    ``harder`` (dirty, merchant pins 60-80 m off the door, GPS drift episodes of 40-120 m
    lasting 2-6 min about once an hour, and no platform sends ``arrived_merchant``) and
    ``streets`` (harder and indoor together)."""
    if name == "indoor":
        return SimOptions(garbage=20, dirt=replace(Dirt(), indoor_outage_rate=0.8))
    if name in ("harder", "streets"):
        return SimOptions(garbage=20, dirt=replace(Dirt(), geocode_error_m=(60.0, 80.0), drift_per_hour=1.0,
                                                   arrived_merchant_rates=(0.0,),
                                                   indoor_outage_rate=0.8 if name == "streets" else 0.0))
    if name == "clean":
        return SimOptions(interval_s=5.0, still_interval_s=None, ts_style="iso", dirt=Dirt.none())
    if name == "dirty":
        return SimOptions(garbage=20)
    if name == "bench":
        dirt = replace(
            Dirt(), outages_per_rider=0.0, gps_off_when_offline=0.0, duplicate_rate=0.005
        )
        return SimOptions(
            riders=130, hours=10.7, interval_s=5.0, still_interval_s=None, ts_style="iso",
            dirt=dirt,
        )
    raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(PRESETS)}")


# --- Ground truth ---------------------------------------------------------------------


@dataclass(frozen=True)
class OrderTruth:
    """One order; times are platform-clock epoch seconds exactly as written."""

    order_id: str
    platform: str
    merchant_xy: XY  # true door, local metres
    customer_xy: XY
    accepted: float
    arrived_event: float | None  # the arrived_merchant line, if one was sent
    door_arrival: float | None  # when the rider actually stopped at the door
    picked_up: float | None
    delivered: float | None
    cancelled: float | None
    reach: float | None  # latched at_merchant start (first within 50 m or arrived_event)
    near_merchant: tuple[Span, ...]  # instantaneous reading: within 50 m or arrived sent

    @property
    def end(self) -> float:
        end = self.delivered if self.delivered is not None else self.cancelled
        assert end is not None
        return end

    @property
    def pickup_or_end(self) -> float:
        return self.picked_up if self.picked_up is not None else self.end


@dataclass(frozen=True)
class GapTruth:
    """Time between two active periods: [start, end) = [tA, tB)."""

    start: float
    end: float
    online_throughout: bool
    dwell_s: float  # longest stay within 50 m of its first point, clipped to the gap
    dwell_strict_s: float  # same with 25 m
    dwell_loose_s: float  # same with 100 m
    dwell_unclipped_s: float  # 100 m, stays overlapping the gap, not clipped (information)
    phase: str  # connecting or idle
    ambiguous: bool  # readings disagree or sit at a threshold: no incidents placed here


@dataclass(frozen=True)
class FallTruth:
    """A fall between orders: the previous order ended at ``t_a``, he fell at ``t`` and stayed
    where he fell until ``stay_end``; then he stopped working or took the next order."""

    t_a: float
    t: float
    stay_end: float
    stopped: bool
    place: XY


@dataclass(frozen=True)
class PhaseSpan:
    start: float
    end: float
    phase: str


@dataclass(frozen=True, eq=False)
class RiderTruth:
    """Everything the simulator knows about one rider's day."""

    rider_id: str
    index: int
    skew_s: float  # gps_ts = true_ts + skew_s
    gps_crs: str
    platforms: tuple[str, ...]
    knots_t: FloatArr  # true path: platform-clock seconds, local metres
    knots_x: FloatArr
    knots_y: FloatArr
    orders: tuple[OrderTruth, ...]
    presence: tuple[tuple[float, str, bool], ...]  # (t, platform, online), as written
    online: tuple[Span, ...]  # online on at least one platform
    gaps: tuple[GapTruth, ...]
    timeline: tuple[PhaseSpan, ...]  # latched reading, merged, over `window`
    changes: tuple[float, ...]  # phase changes under either at_merchant reading
    window: Span
    gps_span: Span  # true-clock span the phone was tracking
    phone_off: tuple[Span, ...]  # true-clock spans with no GPS (outages, phone off)
    falls: tuple[FallTruth, ...] = ()

    def position(self, t: npt.ArrayLike) -> tuple[FloatArr, FloatArr]:
        """True WGS-84 (lat, lon) at platform-clock time(s) t."""
        tt = np.asarray(t, dtype=np.float64)
        return xy_to_latlon(
            np.interp(tt, self.knots_t, self.knots_x), np.interp(tt, self.knots_t, self.knots_y)
        )

    def phase_at(self, t: float, *, latched: bool = True) -> str:
        """The phase at t by DATA_CONTRACT.md section 5 (see the module docstring)."""
        active = [o for o in self.orders if o.accepted <= t < o.end]
        if active:
            if any(o.picked_up is not None and o.picked_up <= t for o in active):
                return "delivering"
            if latched:
                reached = any(o.reach is not None and o.reach <= t for o in active)
            else:
                reached = any(_in_spans(o.near_merchant, t) for o in active)
            return "at_merchant" if reached else "to_pickup"
        if not _in_spans(self.online, t):
            return "offline"
        gap = self.gap_at(t)
        return gap.phase if gap is not None else "idle"

    def gap_at(self, t: float) -> GapTruth | None:
        i = bisect.bisect_right([g.start for g in self.gaps], t) - 1
        if i >= 0 and t < self.gaps[i].end:
            return self.gaps[i]
        return None


@dataclass(frozen=True)
class IncidentTruth:
    incident_id: str
    rider_index: int
    t: float  # platform clock
    phase: str
    category: str
    location: tuple[float, float] | None  # reported WGS-84 (lat, lon)
    location_offset_s: float  # where the rider was this many seconds away from t


@dataclass(frozen=True)
class GarbageLine:
    """A bad line inserted into a feed; ``line_no`` is 1-based in the written file."""

    file: str
    line_no: int
    kind: str
    text: str


@dataclass(frozen=True, eq=False)
class GpsColumns:
    """GPS pings as columns, in file order. NaN in an optional column: field absent."""

    rider_ids: tuple[str, ...]
    rider: npt.NDArray[np.int32]
    ts_ms: IntArr  # phone clock, exactly as written
    style: npt.NDArray[np.int8]  # index into TS_STYLES
    lat: FloatArr  # as written, in the line's crs
    lon: FloatArr
    crs: npt.NDArray[np.int8]  # index into GPS_CRS_FIELD
    accuracy_m: FloatArr
    speed_mps: FloatArr
    heading_deg: FloatArr
    true_t: FloatArr  # platform-clock instant observed: ts_ms / 1000 - skew
    true_lat: FloatArr  # true WGS-84 position at true_t, before noise
    true_lon: FloatArr
    meas_lat: FloatArr  # measured WGS-84 position (noise, outliers), before the crs
    meas_lon: FloatArr
    kind: npt.NDArray[np.int8]  # 0 normal, 1 big error, 2 teleport
    duplicate: npt.NDArray[np.bool_]  # a repeated copy of the previous occurrence

    def __len__(self) -> int:
        return int(self.ts_ms.shape[0])

    def take(self, index: npt.ArrayLike) -> GpsColumns:
        idx = np.asarray(index)
        return GpsColumns(
            self.rider_ids,
            **{f.name: getattr(self, f.name)[idx] for f in fields(self) if f.name != "rider_ids"},
        )

    @staticmethod
    def concat(parts: Sequence[GpsColumns], rider_ids: tuple[str, ...]) -> GpsColumns:
        cols = [f.name for f in fields(GpsColumns) if f.name != "rider_ids"]
        return GpsColumns(
            rider_ids, **{c: np.concatenate([getattr(p, c) for p in parts]) for c in cols}
        )

    def records(self) -> list[Record]:
        """The JSON objects of the lines, in file order."""
        return list(self.iter_records())

    def iter_records(self, chunk: int = 65536) -> Iterator[Record]:
        """The JSON objects of the lines, built a chunk of columns at a time."""
        rider_ids = np.asarray(self.rider_ids, dtype=object)
        crs_field = np.asarray(GPS_CRS_FIELD, dtype=object)
        for lo in range(0, len(self), chunk):
            part = slice(lo, lo + chunk)
            yield from zip_records(
                rider_ids[self.rider[part]].tolist(),
                format_ts(self.ts_ms[part], self.style[part]),
                self.lat[part].tolist(), self.lon[part].tolist(),
                self.accuracy_m[part].tolist(), self.speed_mps[part].tolist(),
                self.heading_deg[part].tolist(), crs_field[self.crs[part]].tolist(),
            )


def zip_records(
    rid: list[str], ts: list[str | int], lat: list[float], lon: list[float],
    acc: list[float], spd: list[float], hdg: list[float], crs: list[str | None],
) -> Iterator[Record]:
    """GPS line objects from column lists; NaN or None leaves an optional field out."""
    for r, t, la, lo, a, s, h, c in zip(rid, ts, lat, lon, acc, spd, hdg, crs, strict=True):
        d: Record = {"rider_id": r, "ts": t, "lat": la, "lon": lo}
        if a == a:
            d["accuracy_m"] = a
        if s == s:
            d["speed_mps"] = s
        if h == h:
            d["heading_deg"] = h
        if c is not None:
            d["crs"] = c
        yield d


@dataclass(frozen=True, eq=False)
class Day:
    """A simulated day: the four files' records plus the ground truth behind them."""

    options: SimOptions
    platform: list[Record]  # valid lines, in file order (garbage kept apart)
    gps: GpsColumns
    incidents: list[Record]
    truth: list[Record]
    garbage: list[GarbageLine]
    riders: list[RiderTruth]
    incident_truth: list[IncidentTruth]


# --- Small helpers --------------------------------------------------------------------


def xy_to_latlon(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[FloatArr, FloatArr]:
    """Inverse of ``shared.geo.local_xy_m`` around the Heyuan origin (WGS-84)."""
    xa, ya = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return ORIGIN_LAT + ya / _M_PER_DEG, ORIGIN_LON + xa / (_M_PER_DEG * _COS_ORIGIN)


def _round6(a: npt.ArrayLike) -> FloatArr:
    return np.asarray(a, dtype=np.float64).round(6)


def _in_spans(spans: Sequence[Span], t: float) -> bool:
    return any(s <= t < e for s, e in spans)


def _merge_spans(spans: Sequence[Span]) -> list[Span]:
    out: list[Span] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1] + 1e-9:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        elif e > s:
            out.append((s, e))
    return out


def local_midnight(date: str) -> float:
    """Epoch seconds of 00:00 Asia/Shanghai on an ISO date."""
    d = datetime.date.fromisoformat(date)
    return float(pendulum.datetime(d.year, d.month, d.day, tz=LOCAL_TZ).timestamp())


def quantize_ms(ms: IntArr, styles: npt.NDArray[np.int8]) -> IntArr:
    """Round epoch milliseconds to what each line's timestamp style can carry."""
    whole = ((ms + 500) // 1000) * 1000
    return np.where(_SECOND_STYLES[styles], whole, ms)


def format_ts(ms: npt.ArrayLike, styles: npt.ArrayLike) -> list[str | int]:
    """Render epoch milliseconds in per-line styles (vectorised per style).

    ``iso``: ``2026-05-14T14:02:11+08:00``; ``z``: ``2026-05-14T06:02:11.123Z``; ``naive``:
    ``2026-05-14 14:02:11`` (Asia/Shanghai); ``epoch``: integer milliseconds. The two
    second-resolution styles drop the milliseconds: quantize with :func:`quantize_ms` first.
    """
    m_all = np.asarray(ms, dtype=np.int64)
    codes = np.broadcast_to(np.asarray(styles, dtype=np.int8), m_all.shape)
    out: list[str | int] = [0] * m_all.shape[0]
    for code, style in enumerate(TS_STYLES):
        sel = np.flatnonzero(codes == code)
        if sel.size == 0:
            continue
        m = m_all[sel]
        vals: list[str | int]
        if style == "epoch":
            vals = m.tolist()
        elif style == "z":
            text = np.datetime_as_string(m.astype("datetime64[ms]"), unit="ms")
            vals = np.strings.add(text, "Z").tolist()
        else:
            local = (m // 1000 + LOCAL_OFFSET_S).astype("datetime64[s]")
            text = np.datetime_as_string(local, unit="s")
            if style == "iso":
                vals = np.strings.add(text, "+08:00").tolist()
            else:
                vals = np.strings.replace(text, "T", " ").tolist()
        if sel.size == m_all.shape[0]:
            return vals
        for i, v in zip(sel.tolist(), vals, strict=True):
            out[i] = v
    return out


def _pick_styles(rng: np.random.Generator, ts_style: TsStyle, n: int) -> npt.NDArray[np.int8]:
    """Timestamp style codes for n lines of one rider's feed."""
    if ts_style != "mixed":
        return np.full(n, TS_STYLES.index(ts_style), dtype=np.int8)
    if rng.random() < 0.6:
        return np.full(n, rng.integers(len(TS_STYLES)), dtype=np.int8)
    return rng.integers(0, len(TS_STYLES), n).astype(np.int8)


# --- The true path ----------------------------------------------------------------------


class _Path:
    """A piecewise-linear true path built forward in time (strictly increasing knots)."""

    def __init__(self, t0: float, xy: XY) -> None:
        self.t: list[float] = [t0]
        self.x: list[float] = [xy[0]]
        self.y: list[float] = [xy[1]]

    @property
    def now(self) -> float:
        return self.t[-1]

    @property
    def pos(self) -> XY:
        return self.x[-1], self.y[-1]

    def _append(self, t: float, x: float, y: float) -> None:
        if t <= self.t[-1]:
            raise ValueError("path knots must move forward in time")
        self.t.append(t)
        self.x.append(x)
        self.y.append(y)

    def stay_until(self, t: float) -> None:
        if t > self.now + 1e-6:
            self._append(t, *self.pos)

    def stay(self, seconds: float) -> None:
        self.stay_until(self.now + seconds)

    def ride_to(self, rng: np.random.Generator, target: XY, speed: float) -> float:
        """Ride an L-shaped street route to target; returns the arrival time."""
        x0, y0 = self.pos
        corner = (target[0], y0) if rng.random() < 0.5 else (x0, target[1])
        self._straight(rng, corner, speed)
        turning = abs(target[0] - x0) > 1.0 and abs(target[1] - y0) > 1.0
        if turning and rng.random() < 0.25:
            self.stay(rng.uniform(8.0, 40.0))  # a traffic light at the corner
        self._straight(rng, target, speed)
        return self.now

    def _straight(self, rng: np.random.Generator, end: XY, speed: float) -> None:
        x0, y0 = self.pos
        dx, dy = end[0] - x0, end[1] - y0
        length = math.hypot(dx, dy)
        if length < 0.5:  # already there
            return
        n = max(1, round(length / rng.uniform(120.0, 260.0)))
        frac = np.arange(1, n + 1) / n
        wobble = rng.normal(0.0, 3.0, n)
        wobble[-1] = 0.0
        px = x0 + dx * frac - dy / length * wobble
        py = y0 + dy * frac + dx / length * wobble
        v = np.clip(speed * rng.uniform(0.75, 1.25, n), 3.0, 8.0)
        seg = np.hypot(np.diff(px, prepend=x0), np.diff(py, prepend=y0))
        times = self.now + np.cumsum(np.maximum(seg, 0.05) / v)
        self.t.extend(times.tolist())
        self.x.extend(px.tolist())
        self.y.extend(py.tolist())

    def truncate(self, t: float) -> None:
        """Cut the path at t (the rider changes plans there)."""
        if t >= self.now:
            self.stay_until(t)
            return
        i = bisect.bisect_right(self.t, t) - 1
        if i < 0:
            raise ValueError("cannot truncate before the path starts")
        if self.t[i] == t:
            del self.t[i + 1 :], self.x[i + 1 :], self.y[i + 1 :]
            return
        f = (t - self.t[i]) / (self.t[i + 1] - self.t[i])
        x = self.x[i] + f * (self.x[i + 1] - self.x[i])
        y = self.y[i] + f * (self.y[i + 1] - self.y[i])
        del self.t[i + 1 :], self.x[i + 1 :], self.y[i + 1 :]
        self._append(t, x, y)

    def arrays(self) -> tuple[FloatArr, FloatArr, FloatArr]:
        return np.array(self.t), np.array(self.x), np.array(self.y)

    def path_at(self, t: float) -> XY:
        return float(np.interp(t, self.t, self.x)), float(np.interp(t, self.t, self.y))


# --- The world and the rider's plan --------------------------------------------------------


@dataclass(frozen=True, eq=False)
class World:
    merchants: FloatArr  # (m, 2) true doors, local metres
    hotspots: FloatArr  # (k, 2) commercial streets riders wait around
    geocode_offset: dict[str, FloatArr]  # platform -> (m, 2) offset of its merchant geocode


def _offsets(rng: np.random.Generator, n: int, lo: float, hi: float) -> FloatArr:
    ang = rng.uniform(0.0, 2 * math.pi, n)
    r = rng.uniform(lo, hi, n)
    return np.column_stack([r * np.cos(ang), r * np.sin(ang)])


def make_world(rng: np.random.Generator, dirt: Dirt) -> World:
    hotspots = np.clip(rng.normal(0.0, 1300.0, (8, 2)), -3000.0, 3000.0)
    clustered = np.repeat(hotspots, 12, axis=0) + rng.normal(0.0, 80.0, (96, 2))
    scattered = rng.uniform(-3500.0, 3500.0, (20, 2))
    merchants = np.vstack([clustered, scattered])
    lo, hi = dirt.geocode_error_m
    geo = {p: _offsets(rng, len(merchants), lo, hi) for p in PLATFORMS}
    return World(merchants, hotspots, geo)


@dataclass
class _Order:
    seq: int
    platform: str
    merchant: int
    customer_xy: XY
    customer_offset: XY
    accepted: float
    door_arrival: float | None = None
    arrived_tap: float | None = None
    picked_up: float | None = None
    delivered: float | None = None
    cancelled: float | None = None


_GAP_WEIGHTS = {"connect": 0.6, "dwell_short": 0.1, "long_wait": 0.09, "blip": 0.03}


class _Planner:
    """Plans one rider's shift: presence, orders, gaps and the true path."""

    def __init__(
        self, rng: np.random.Generator, opts: SimOptions, world: World, day0: float
    ) -> None:
        self.rng, self.opts, self.world = rng, opts, world
        self.shift_start = day0 + rng.uniform(8.5, 11.0) * 3600.0
        self.shift_end = self.shift_start + opts.hours * rng.uniform(0.92, 1.08) * 3600.0
        ang = rng.uniform(0.0, 2 * math.pi)
        dist = rng.uniform(1500.0, 4000.0)
        self.home: XY = (dist * math.cos(ang), dist * math.sin(ang))
        self.speed = rng.uniform(4.2, 6.3)
        order = rng.permutation(len(PLATFORMS))
        self.primary = PLATFORMS[order[0]]
        self.secondary = (
            PLATFORMS[order[1]] if rng.random() < opts.second_platform_rate else None
        )
        self.secondary_join = self.shift_start + rng.uniform(0.0, 5400.0)
        self.platforms = (self.primary,) + ((self.secondary,) if self.secondary else ())
        rates = opts.dirt.arrived_merchant_rates
        self.tap_rate = {p: float(rates[rng.integers(len(rates))]) for p in PLATFORMS}
        self.online = dict.fromkeys(PLATFORMS, False)
        self.presence: list[tuple[float, str, bool]] = []
        self.orders: list[_Order] = []
        self.phone_off: list[Span] = []
        self.meals = 0
        self.breaks = 0
        self.falls: list[FallTruth] = []
        self.stopped = False  # stopped working after a fall: the shift is over
        self.path = _Path(self.shift_start - rng.uniform(0.0, 120.0), self.home)

    # presence ----------------------------------------------------------------------------

    def _set(self, platform: str, on: bool, t: float) -> None:
        self.presence.append((t, platform, on))
        self.online[platform] = on

    def _all_offline(self, t: float) -> list[str]:
        was = [p for p in self.platforms if self.online[p]]  # primary first
        for p in was:
            self._set(p, False, t + self.rng.uniform(0.0, 12.0))
        return was

    def _all_online(self, t: float, platforms: list[str]) -> None:
        platforms = [self.primary] + [p for p in platforms if p != self.primary]
        for k, p in enumerate(platforms):
            self._set(p, True, t + (self.rng.uniform(0.0, 60.0) if k else 0.0))

    def _maybe_toggle_secondary(self, t0: float, t1: float) -> None:
        p = self.secondary
        if p is None or t1 - t0 < 60.0:
            return
        first = max(t0, self.secondary_join) + 10.0
        if not self.online[p] and t1 - 10.0 > first and self.rng.random() < 0.8:
            self._set(p, True, self.rng.uniform(first, t1 - 10.0))
        elif self.online[p] and self.online[self.primary] and self.rng.random() < 0.08:
            self._set(p, False, self.rng.uniform(t0 + 10.0, t1 - 10.0))

    # motion --------------------------------------------------------------------------------

    def _ride(self, target: XY) -> float:
        return self.path.ride_to(self.rng, target, self.speed)

    def _wander_target(self) -> XY:
        rng, (x, y) = self.rng, self.path.pos
        for _ in range(20):
            if rng.random() < 0.6:
                h = self.world.hotspots[rng.integers(len(self.world.hotspots))]
                tx, ty = h + rng.normal(0.0, 60.0, 2)
            else:
                ang, dist = rng.uniform(0.0, 2 * math.pi), rng.uniform(300.0, 1500.0)
                tx, ty = x + dist * math.cos(ang), y + dist * math.sin(ang)
            r = math.hypot(tx, ty)
            if r > _CITY_RADIUS_M:
                tx, ty = tx * _CITY_RADIUS_M / r, ty * _CITY_RADIUS_M / r
            if math.hypot(tx - x, ty - y) >= 300.0:
                return float(tx), float(ty)
        r = max(math.hypot(x, y), 1.0)
        return x - 400.0 * x / r, y - 400.0 * y / r

    def _wander(self, until: float, max_stop_s: float = 450.0) -> None:
        """Cruise between hotspots with short stops until ``until``."""
        p = self.path
        if until <= p.now:
            return
        while p.now < until:
            self._ride(self._wander_target())
            if p.now < until and self.rng.random() < 0.45:
                p.stay(min(self.rng.uniform(20.0, max_stop_s), until - p.now))
        p.truncate(until)

    # orders ----------------------------------------------------------------------------------

    def _new_order(self, t: float, near: XY | None = None) -> _Order:
        rng = self.rng
        choices = [q for q in PLATFORMS if self.online[q]]
        platform = choices[rng.integers(len(choices))]
        ref = np.asarray(near if near is not None else self.path.pos)
        d = np.hypot(*(self.world.merchants - ref).T)
        w = np.exp(-d / 900.0) * (d < 3500.0) + 1e-12
        m = int(rng.choice(len(d), p=w / w.sum()))
        mx, my = self.world.merchants[m]
        ang, dist = rng.uniform(0.0, 2 * math.pi), rng.uniform(600.0, 4000.0)
        cx, cy = mx + dist * math.cos(ang), my + dist * math.sin(ang)
        r = math.hypot(cx, cy)
        if r > _CITY_RADIUS_M:
            cx, cy = cx * _CITY_RADIUS_M / r, cy * _CITY_RADIUS_M / r
        ox, oy = _offsets(rng, 1, *self.opts.dirt.geocode_error_m)[0]
        order = _Order(len(self.orders), platform, m, (cx, cy), (ox, oy), t)
        self.orders.append(order)
        return order

    def merchant_xy(self, o: _Order) -> XY:
        mx, my = self.world.merchants[o.merchant]
        return float(mx), float(my)

    def _tap(self, o: _Order) -> None:
        """Decide the arrived_merchant tap, if this platform sends one for this order."""
        rng, end = self.rng, o.picked_up if o.picked_up is not None else o.cancelled
        if o.door_arrival is None or end is None or rng.random() >= self.tap_rate[o.platform]:
            return
        if rng.random() < self.opts.dirt.early_arrival_tap_rate:
            tap = max(o.accepted + 5.0, o.door_arrival - rng.uniform(30.0, 120.0))
        else:
            tap = o.door_arrival + rng.uniform(0.0, 40.0)
        o.arrived_tap = min(tap, (o.door_arrival + end) / 2.0) if tap < end else None

    def _to_merchant(self, o: _Order) -> None:
        rng = self.rng
        o.door_arrival = self._ride(self.merchant_xy(o))
        wait = rng.uniform(60.0, 480.0) if rng.random() < 0.9 else rng.uniform(480.0, 960.0)
        o.picked_up = o.door_arrival + wait
        self.path.stay_until(o.picked_up)
        self._tap(o)
        self.path.stay(rng.uniform(0.0, 20.0))

    def _to_customer(self, o: _Order) -> None:
        arrival = self._ride(o.customer_xy)
        o.delivered = arrival + self.rng.uniform(20.0, 150.0)
        self.path.stay_until(o.delivered)

    def _order_block(self) -> None:
        """One order, two stacked orders, or a cancelled order, from now."""
        rng, p, r = self.rng, self.path, self.rng.random()
        a = self._new_order(p.now)
        if r < self.opts.cancel_rate:
            t_cancel = p.now + rng.uniform(60.0, 600.0)
            arrival = self._ride(self.merchant_xy(a))
            if arrival >= t_cancel:
                p.truncate(t_cancel)
            else:
                a.door_arrival = arrival
                p.stay_until(t_cancel)
            a.cancelled = t_cancel
            self._tap(a)
            return
        self._to_merchant(a)
        assert a.picked_up is not None
        if r < self.opts.cancel_rate + self.opts.stacking_rate / 2:
            # second order accepted before the first is picked up: both pick-ups, then both drops
            b = self._new_order(rng.uniform(a.accepted + 30.0, a.picked_up - 10.0),
                                near=self.merchant_xy(a))
            self._to_merchant(b)
            self._to_customer(a)
            self._to_customer(b)
        elif r < self.opts.cancel_rate + self.opts.stacking_rate:
            # second order accepted on the way to the first customer: drop first, then fetch
            arrival = self._ride(a.customer_xy)
            a.delivered = arrival + rng.uniform(20.0, 150.0)
            lo = a.picked_up + 30.0
            t_b = rng.uniform(lo, arrival - 5.0) if arrival - 5.0 > lo else arrival + 5.0
            p.stay_until(a.delivered)
            b = self._new_order(t_b)
            self._to_merchant(b)
            self._to_customer(b)
        else:
            self._to_customer(a)

    # gaps ----------------------------------------------------------------------------------

    def _gap_kind(self) -> str:
        rng, now = self.rng, self.path.now
        weights = dict(_GAP_WEIGHTS)
        hour = ((now + LOCAL_OFFSET_S) % 86400.0) / 3600.0
        if self.meals < 2 and (11.0 <= hour < 13.5 or 17.0 <= hour < 19.5):
            weights["meal"] = 0.3 if self.meals == 0 else 0.1
        if (self.opts.offline_breaks and self.breaks < 2 and now - self.shift_start > 5400.0
                and self.shift_end - now > 5400.0):
            weights["offline_break"] = 0.06
        names = list(weights)
        w = np.array([weights[k] for k in names])
        return names[int(rng.choice(len(names), p=w / w.sum()))]

    def _fall(self) -> None:
        """He rides on after the order, falls while riding, stays 15-50 min where he fell, then
        stops working (offline, home, no more orders) or takes the next order."""
        rng, p = self.rng, self.path
        t_a = p.now
        stopped = bool(rng.random() < self.opts.fall_stop_rate)
        quick = not stopped and rng.random() < 0.5  # back at work within 30 min of the last order
        p.stay(rng.uniform(0.0, 60.0))
        pre = rng.uniform(60.0, 180.0) if quick else rng.uniform(60.0, 14.0 * 60.0)
        self._wander(t_a + pre, 150.0)  # short stops only: no dwell before the fall
        leg_start = p.now
        arrival = self._ride(self._wander_target())
        hi = min(arrival - 15.0, max(leg_start + 25.0, t_a + 25.0 * 60.0))  # clear of the 30-min limit
        t_fall = rng.uniform(leg_start + 15.0, hi) if hi - leg_start > 25.0 else arrival
        p.truncate(t_fall)
        stay = rng.uniform(15.0, 23.0 if quick else 50.0) * 60.0
        p.stay(stay)
        if stopped:
            t_off = t_fall + stay * rng.uniform(0.2, 1.0) + rng.uniform(0.0, 120.0)
            p.stay_until(t_off)
            self._all_offline(t_off)
            p.stay(rng.uniform(30.0, 300.0))
            self._ride(self.home)
            p.stay(rng.uniform(15.0, 120.0))
            self.stopped = True
        else:
            p.stay(rng.uniform(0.0, 180.0))
            if abs(p.now - t_a - CONNECT_MAX_S) < 120.0:  # clear of the 30-minute threshold
                p.stay(240.0)
        self.falls.append(FallTruth(t_a, t_fall, t_fall + stay, stopped, p.path_at(t_fall)))

    def _gap(self) -> None:
        """Time between orders, ending at the next acceptance (path.now)."""
        rng, p = self.rng, self.path
        if self.opts.fall_rate > 0 and rng.random() < self.opts.fall_rate:
            self._fall()
            return
        t0, kind = p.now, self._gap_kind()
        if kind == "connect":  # short, moving, stops under 8 min: connecting
            length = (rng.uniform(0.5, 12.0) if rng.random() < 0.7 else rng.uniform(12.0, 27.0))
            end = t0 + length * 60.0
            p.stay(min(rng.uniform(0.0, 240.0), length * 60.0))
            if end - p.now > 660.0 and rng.random() < 0.5:  # a short stop on the way
                self._wander(p.now + rng.uniform(60.0, end - p.now - 540.0), 120.0)
                p.stay(rng.uniform(240.0, 480.0))
            self._wander(end)
        elif kind == "dwell_short":  # short, but one stop of 12-20 min: idle
            length = rng.uniform(15.0, 27.0) * 60.0
            dwell = rng.uniform(720.0, min(length - 60.0, 1200.0))
            self._wander(t0 + rng.uniform(0.0, length - dwell - 30.0), 240.0)
            p.stay(dwell)
            self._wander(t0 + length, 240.0)
        elif kind == "long_wait":  # over 30 min waiting for orders: idle
            length = rng.uniform(33.0, 80.0) * 60.0
            if rng.random() < 0.5:
                self._wander(t0 + length)
            else:
                pre = rng.uniform(0.0, length - 780.0)
                self._wander(t0 + pre, 240.0)
                p.stay(rng.uniform(720.0, min(length - pre - 30.0, 2400.0)))
                self._wander(t0 + length)
        elif kind == "meal":  # 15-60 min at a restaurant: idle
            self.meals += 1
            self._wander(t0 + rng.uniform(60.0, 360.0), 60.0)
            p.stay(rng.uniform(15.0, 60.0) * 60.0)
            self._wander(p.now + rng.uniform(0.0, 480.0), 240.0)
        elif kind == "offline_break":  # off duty on every platform for a while
            self.breaks += 1
            p.stay(rng.uniform(30.0, 180.0))
            t_off = p.now
            was = self._all_offline(t_off)
            t_on = t_off + rng.uniform(15.0, 90.0) * 60.0
            if rng.random() < 0.5:
                if self._ride(self.home) > t_on:
                    p.truncate(t_on)
            else:
                self._wander(t_on, 1800.0)
            p.stay_until(t_on)
            if rng.random() < self.opts.dirt.gps_off_when_offline:
                self.phone_off.append(
                    (t_off + rng.uniform(0.0, 60.0), t_on - rng.uniform(0.0, 60.0))
                )
            self._all_online(t_on, was if rng.random() < 0.7 else was[:1])
            self._wander(p.now + rng.uniform(60.0, 900.0))
        else:  # blip: short gap, but off duty on every platform for 1-3 min: idle
            length = rng.uniform(7.0, 25.0) * 60.0
            t_b = t0 + rng.uniform(60.0, length - 300.0)
            was = self._all_offline(t_b)
            self._all_online(t_b + 15.0 + rng.uniform(60.0, 180.0), was)
            self._wander(t0 + length)
        if kind in ("connect", "dwell_short", "long_wait", "meal"):
            self._maybe_toggle_secondary(t0, p.now)

    # the shift -------------------------------------------------------------------------------

    def run(self) -> None:
        rng, p = self.rng, self.path
        p.stay_until(self.shift_start)
        self._set(self.primary, True, self.shift_start)
        self._wander(p.now + rng.uniform(120.0, 1800.0))  # before the first order: idle
        while True:
            self._order_block()
            if p.now >= self.shift_end - 1500.0:
                break
            self._gap()
            if self.stopped:
                return
            if p.now >= self.shift_end - 900.0:
                break
        t_off = max(self.shift_end, p.now + 60.0)
        if self._ride(self.home) > t_off:
            p.truncate(t_off)
        p.stay_until(t_off)
        self._all_offline(t_off)
        p.stay(rng.uniform(15.0, 120.0))  # the tracker stops a little after going off duty

    @property
    def gps_span(self) -> Span:
        return self.path.t[0], self.path.now


# --- Truth: phases from the ground truth -------------------------------------------------


def _disc_spans(
    tk: FloatArr, xk: FloatArr, yk: FloatArr, c: XY, radius: float, t0: float, t1: float
) -> list[Span]:
    """Exact spans of [t0, t1) in which the path is within ``radius`` of point c."""
    if t1 <= t0:
        return []
    lo, hi = np.searchsorted(tk, t0, "right"), np.searchsorted(tk, t1, "left")
    ts = np.concatenate(([t0], tk[lo:hi], [t1]))
    xs = np.interp(ts, tk, xk) - c[0]
    ys = np.interp(ts, tk, yk) - c[1]
    dx, dy, px, py = np.diff(xs), np.diff(ys), xs[:-1], ys[:-1]
    a = dx * dx + dy * dy
    b = 2.0 * (px * dx + py * dy)
    cc = px * px + py * py - radius * radius
    still = a < 1e-12
    disc = np.where(still, -1.0, b * b - 4.0 * a * cc)
    sq = np.sqrt(np.maximum(disc, 0.0))
    den = np.where(still, 1.0, 2.0 * a)
    s_in = np.clip((-b - sq) / den, 0.0, 1.0)
    s_out = np.clip((-b + sq) / den, 0.0, 1.0)
    inside = (~still & (disc > 0.0) & (s_out > s_in)) | (still & (cc <= 0.0))
    s_in = np.where(still, 0.0, s_in)
    s_out = np.where(still, 1.0, s_out)
    dt = np.diff(ts)
    spans = [
        (float(ts[k] + s_in[k] * dt[k]), float(ts[k] + s_out[k] * dt[k]))
        for k in np.flatnonzero(inside)
    ]
    return _merge_spans(spans)


def _anchor_dwell(ts: FloatArr, xs: FloatArr, ys: FloatArr, radius: float) -> FloatArr:
    """For each sample i: how long the path stays within ``radius`` of sample i from then."""
    n = ts.shape[0]
    d2 = (xs[:, None] - xs[None, :]) ** 2 + (ys[:, None] - ys[None, :]) ** 2
    out = np.triu(d2 > radius * radius, 1)
    first_out = np.where(out.any(axis=1), out.argmax(axis=1), n)
    stay: FloatArr = ts[first_out - 1] - ts
    return stay


def _gap_truth(
    tk: FloatArr, xk: FloatArr, yk: FloatArr, t_a: float, t_b: float, online: Sequence[Span]
) -> GapTruth:
    length = t_b - t_a
    online_throughout = any(s <= t_a and t_b <= e for s, e in online)
    eligible = online_throughout and length <= CONNECT_MAX_S
    if not eligible:
        return GapTruth(t_a, t_b, online_throughout, math.nan, math.nan, math.nan, math.nan,
                        "idle", False)
    ts = np.linspace(t_a, t_b, math.ceil(length / 5.0) + 1)
    xs, ys = np.interp(ts, tk, xk), np.interp(ts, tk, yk)
    d = {r: float(_anchor_dwell(ts, xs, ys, r).max()) for r in (25.0, DWELL_RADIUS_M, 100.0)}
    w0, w1 = max(t_a - 900.0, tk[0]), min(t_b + 900.0, tk[-1])
    tw = np.linspace(w0, w1, math.ceil((w1 - w0) / 10.0) + 1)
    runs = _anchor_dwell(tw, np.interp(tw, tk, xk), np.interp(tw, tk, yk), 100.0)
    overlapping = (tw < t_b) & (tw + runs > t_a)
    unclipped = float(runs[overlapping].max()) if overlapping.any() else 0.0
    dwelt = d[DWELL_RADIUS_M] >= DWELL_MIN_S
    clear = d[100.0] < DWELL_MIN_S - AMBIGUITY_MARGIN_S or d[25.0] >= DWELL_MIN_S + AMBIGUITY_MARGIN_S
    ambiguous = not clear or abs(length - CONNECT_MAX_S) < AMBIGUITY_MARGIN_S
    return GapTruth(t_a, t_b, True, d[DWELL_RADIUS_M], d[25.0], d[100.0], unclipped,
                    "idle" if dwelt else "connecting", ambiguous)


def _online_spans(presence: Sequence[tuple[float, str, bool]]) -> list[Span]:
    state: dict[str, bool] = {}
    spans: list[Span] = []
    start: float | None = None
    for t, platform, on in sorted(presence):
        before = any(state.values())
        state[platform] = on
        after = any(state.values())
        if after and not before:
            start = t
        elif before and not after and start is not None:
            spans.append((start, t))
            start = None
    if start is not None:
        spans.append((start, math.inf))
    return _merge_spans(spans)


def _timeline(truth: RiderTruth, breaks: Sequence[float], *, latched: bool) -> list[PhaseSpan]:
    w0, w1 = truth.window
    pts = sorted({w0, w1, *(b for b in breaks if w0 < b < w1)})
    spans: list[PhaseSpan] = []
    for a, b in zip(pts[:-1], pts[1:], strict=True):
        ph = truth.phase_at((a + b) / 2.0, latched=latched)
        if spans and spans[-1].phase == ph:
            spans[-1] = PhaseSpan(spans[-1].start, b, ph)
        else:
            spans.append(PhaseSpan(a, b, ph))
    return spans


_OrderEvents: TypeAlias = tuple[str, str, XY, XY, dict[str, float]]  # id, platform, doors, times


def _rider_truth(base: RiderTruth, orders_raw: Sequence[_OrderEvents]) -> RiderTruth:
    """Fill in orders, gaps and timelines of a RiderTruth from the written event times."""
    tk, xk, yk = base.knots_t, base.knots_x, base.knots_y
    orders: list[OrderTruth] = []
    for order_id, platform, m_xy, c_xy, ev in orders_raw:
        acc = ev["accepted"]
        end = ev.get("delivered", ev.get("cancelled"))
        assert end is not None
        pick_or_end = ev.get("picked_up", end)
        inside = _disc_spans(tk, xk, yk, m_xy, MERCHANT_RADIUS_M, acc, pick_or_end)
        tap = ev.get("arrived_merchant")
        starts = [s for s, _ in inside[:1]] + ([tap] if tap is not None else [])
        near = _merge_spans(inside + ([(tap, pick_or_end)] if tap is not None else []))
        orders.append(OrderTruth(
            order_id, platform, m_xy, c_xy, acc, tap, ev.get("door_arrival"),
            ev.get("picked_up"), ev.get("delivered"), ev.get("cancelled"),
            min(starts) if starts else None, tuple(near),
        ))
    orders.sort(key=lambda o: o.accepted)
    online = _online_spans(base.presence)
    periods = _merge_spans([(o.accepted, o.end) for o in orders])
    gaps = tuple(
        _gap_truth(tk, xk, yk, a[1], b[0], online)
        for a, b in zip(periods[:-1], periods[1:], strict=True)
    )
    truth = replace(base, orders=tuple(orders), online=tuple(online), gaps=gaps)
    breaks = [t for t, _, _ in base.presence]
    for o in orders:
        breaks += [o.accepted, o.end, *(s for sp in o.near_merchant for s in sp)]
        breaks += [t for t in (o.picked_up, o.reach) if t is not None]
    latched = _timeline(truth, breaks, latched=True)
    instant = _timeline(truth, breaks, latched=False)
    changes = sorted({s.start for s in latched[1:]} | {s.start for s in instant[1:]})
    return replace(truth, timeline=tuple(latched), changes=tuple(changes))


# --- Observation: platform events, GPS, incidents ---------------------------------------------


def _platform_records(
    rng: np.random.Generator, opts: SimOptions, plan: _Planner, rider_id: str, index: int
) -> tuple[list[Record], list[_OrderEvents], list[tuple[float, str, bool]]]:
    """The rider's platform lines (file order), each order's and presence times as written."""
    dirt = opts.dirt
    events: list[tuple[float, int, str, str, str, _Order | None]] = []
    for o in plan.orders:
        events.append((o.accepted, 0, "order", "accepted", o.platform, o))
        if o.arrived_tap is not None:
            events.append((o.arrived_tap, 1, "order", "arrived_merchant", o.platform, o))
        if o.picked_up is not None and o.cancelled is None:
            events.append((o.picked_up, 2, "order", "picked_up", o.platform, o))
        if o.delivered is not None:
            events.append((o.delivered, 3, "order", "delivered", o.platform, o))
        if o.cancelled is not None:
            events.append((o.cancelled, 3, "order", "cancelled", o.platform, o))
    for t, platform, on in plan.presence:
        events.append((t, -1, "presence", "online" if on else "offline", platform, None))
    events.sort(key=lambda e: (e[0], e[1]))
    styles = _pick_styles(rng, opts.ts_style, len(events))
    ms = quantize_ms(np.rint(np.array([e[0] for e in events]) * 1000.0).astype(np.int64), styles)
    ts = format_ts(ms, styles)

    crs_of: dict[str, Crs] = {}
    explicit_wgs: dict[str, bool] = {}
    for p in PLATFORMS:
        crs_of[p] = dirt.platform_crs[rng.integers(len(dirt.platform_crs))]
        explicit_wgs[p] = bool(rng.random() < 0.5)
    geo: dict[int, tuple[Record, Record]] = {}
    for o in plan.orders:
        m_xy = plan.world.merchants[o.merchant] + plan.world.geocode_offset[o.platform][o.merchant]
        c_xy = np.asarray(o.customer_xy) + np.asarray(o.customer_offset)
        lat, lon = from_wgs84(*xy_to_latlon([m_xy[0], c_xy[0]], [m_xy[1], c_xy[1]]),
                              crs_of[o.platform])
        lat, lon = _round6(lat), _round6(lon)
        geo[o.seq] = ({"lat": float(lat[0]), "lon": float(lon[0])},
                      {"lat": float(lat[1]), "lon": float(lon[1])})

    prefix = f"{opts.seed % 100:02d}{index:03d}"
    records: list[Record] = []
    times: dict[int, dict[str, float]] = {o.seq: {} for o in plan.orders}
    presence_written: list[tuple[float, str, bool]] = []
    for k, ((_, _, kind, typ, platform, order), t_ms, t_str) in enumerate(
        zip(events, ms.tolist(), ts, strict=True)
    ):
        rec: Record = {"event_id": f"ev-{opts.seed}-{index}-{k}", "kind": kind, "type": typ,
                       "rider_id": rider_id, "platform": platform, "ts": t_str}
        if order is None:
            presence_written.append((t_ms / 1000.0, platform, typ == "online"))
        else:
            rec["order_id"] = f"{ORDER_PREFIX[platform]}{prefix}{order.seq:03d}"
            rec["merchant"], rec["customer"] = geo[order.seq]
            if crs_of[platform] != "wgs84" or explicit_wgs[platform]:
                rec["crs"] = crs_of[platform]
            times[order.seq][typ] = t_ms / 1000.0
        records.append(rec)
    for i in range(len(records) - 1):
        if rng.random() < dirt.platform_reorder_rate:
            records[i], records[i + 1] = records[i + 1], records[i]

    orders_raw = []
    for o in plan.orders:
        ev = times[o.seq]
        if o.door_arrival is not None:
            ev["door_arrival"] = o.door_arrival
        orders_raw.append((f"{ORDER_PREFIX[o.platform]}{prefix}{o.seq:03d}", o.platform,
                           plan.merchant_xy(o), o.customer_xy, ev))
    return records, orders_raw, presence_written


def _renewal(rng: np.random.Generator, t0: float, t1: float, lo: float, hi: float) -> FloatArr:
    """Sample times in [t0, t1) with gaps drawn uniformly from [lo, hi]."""
    n = int((t1 - t0) / lo) + 2
    t = t0 + rng.uniform(0.0, hi) + np.cumsum(rng.uniform(lo, hi, n)) - lo
    return t[t < t1]


def _sample_gps(
    rng: np.random.Generator, opts: SimOptions, truth: RiderTruth, skew_ms: int, crs_code: int
) -> GpsColumns:
    """Observe the true path: sample times, clock skew, noise, outliers (vectorised)."""
    dirt = opts.dirt
    tk, xk, yk = truth.knots_t, truth.knots_x, truth.knots_y
    g0, g1 = truth.gps_span
    seg_dt = np.diff(tk)
    vx, vy = np.diff(xk) / seg_dt, np.diff(yk) / seg_dt
    moving = np.hypot(vx, vy) > 0.05

    iv = opts.interval_s
    t = _renewal(rng, g0, g1, 0.8 * iv, 1.2 * iv)
    if opts.still_interval_s is not None:
        seg = np.clip(np.searchsorted(tk, t, "right") - 1, 0, seg_dt.size - 1)
        ts_still = _renewal(rng, g0, g1, *opts.still_interval_s)
        seg_s = np.clip(np.searchsorted(tk, ts_still, "right") - 1, 0, seg_dt.size - 1)
        t = np.sort(np.concatenate([t[moving[seg]], ts_still[~moving[seg_s]]]))
    keep = np.ones(t.shape, dtype=bool)
    for a, b in truth.phone_off:
        keep &= (t < a) | (t >= b)
    t = t[keep]

    styles = _pick_styles(rng, opts.ts_style, t.size)
    ms = quantize_ms(np.rint(t * 1000.0).astype(np.int64) + skew_ms, styles)
    keep = np.diff(ms, prepend=np.iinfo(np.int64).min // 2) >= 1000
    ms, styles = ms[keep], styles[keep]
    n = ms.size
    true_t = (ms - skew_ms) / 1000.0
    x, y = np.interp(true_t, tk, xk), np.interp(true_t, tk, yk)
    seg = np.clip(np.searchsorted(tk, true_t, "right") - 1, 0, seg_dt.size - 1)
    svx, svy = vx[seg], vy[seg]

    lo, hi = dirt.accuracy_m
    acc = lo + (hi - lo) * rng.beta(2.0, 3.5, n)
    kind = np.zeros(n, dtype=np.int8)
    big = rng.random(n) < dirt.big_error_rate
    acc[big] = rng.uniform(50.0, 150.0, int(big.sum()))
    kind[big] = 1
    mx, my = x.copy(), y.copy()
    if dirt.gps_noise:
        sigma = acc / 1.5  # accuracy is the ~68 % radius of a 2-D normal
        mx += rng.normal(0.0, 1.0, n) * sigma
        my += rng.normal(0.0, 1.0, n) * sigma
    tele = rng.random(n) < dirt.teleport_rate
    off = _offsets(rng, int(tele.sum()), 300.0, 3000.0)
    mx[tele] += off[:, 0]
    my[tele] += off[:, 1]
    kind[tele] = 2

    true_lat, true_lon = xy_to_latlon(x, y)
    meas_lat, meas_lon = xy_to_latlon(mx, my)
    lat, lon = from_wgs84(meas_lat, meas_lon, _GPS_CRS[crs_code])

    speed = np.hypot(svx, svy)
    speed_f = np.maximum(speed + rng.normal(0.0, 0.4, n), 0.0).round(2)
    speed_f[rng.random(n) >= dirt.speed_field_rate] = np.nan
    heading = ((np.degrees(np.arctan2(svx, svy)) + rng.normal(0.0, 6.0, n)) % 360.0).round(1)
    heading[(rng.random(n) >= dirt.heading_field_rate) | (speed < 0.05)] = np.nan
    acc_f = acc.round(1)
    acc_f[rng.random(n) >= dirt.accuracy_field_rate] = np.nan

    return GpsColumns(
        rider_ids=(), rider=np.full(n, truth.index, dtype=np.int32), ts_ms=ms, style=styles,
        lat=_round6(lat), lon=_round6(lon), crs=np.full(n, crs_code, dtype=np.int8),
        accuracy_m=acc_f, speed_mps=speed_f, heading_deg=heading, true_t=true_t,
        true_lat=true_lat, true_lon=true_lon, meas_lat=meas_lat, meas_lon=meas_lon,
        kind=kind, duplicate=np.zeros(n, dtype=bool),
    )


def _outages(rng: np.random.Generator, dirt: Dirt, span: Span) -> list[Span]:
    n = rng.poisson(dirt.outages_per_rider) if dirt.outages_per_rider > 0 else 0
    lo, hi = dirt.outage_minutes
    out = []
    for _ in range(n):
        start = rng.uniform(span[0], span[1])
        out.append((start, start + rng.uniform(lo, hi) * 60.0))
    return out


def _stays(tk: FloatArr, xk: FloatArr, yk: FloatArr, min_s: float) -> list[Span]:
    """Spans of the true path standing still (consecutive knots at one place), at least min_s."""
    still = (np.hypot(np.diff(xk), np.diff(yk)) < 0.01) & (np.diff(tk) > 0)
    edges = np.diff(np.concatenate([[0], still.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(float(tk[a]), float(tk[b])) for a, b in zip(starts, ends, strict=True) if tk[b] - tk[a] >= min_s]


def _within(t: FloatArr, spans: Sequence[Span]) -> npt.NDArray[np.bool_]:
    out = np.zeros(t.shape, dtype=bool)
    for a, b in spans:
        out |= (t >= a) & (t < b)
    return out


def _indoor_outages(rng: np.random.Generator, dirt: Dirt, tk: FloatArr, xk: FloatArr, yk: FloatArr) -> list[Span]:
    """GPS lost indoors: in a share of the stays (at merchants, customers, waiting spots, meals),
    1-3 outages of a few minutes, each inside its own part of the stay."""
    out: list[Span] = []
    lo_n, hi_n = dirt.indoor_outage_count
    lo, hi = dirt.indoor_outage_minutes
    for a, b in _stays(tk, xk, yk, dirt.indoor_min_stay_s):
        if rng.random() >= dirt.indoor_outage_rate:
            continue
        k = int(rng.integers(lo_n, hi_n + 1))
        part = (b - a) / k
        for j in range(k):
            dur = min(rng.uniform(lo, hi) * 60.0, 0.9 * part)
            start = a + j * part + rng.uniform(0.0, part - dur)
            out.append((start, start + dur))
    return out


def _drift(rng: np.random.Generator, dirt: Dirt, gps: GpsColumns, span: Span, crs_code: int) -> GpsColumns:
    """Drift episodes: the measured position wanders up to 40-120 m off the true one and back
    (a half sine), for a few minutes, whether the rider moves or stands still."""
    hours = (span[1] - span[0]) / 3600.0
    n = int(rng.poisson(dirt.drift_per_hour * hours))
    if n == 0 or len(gps) == 0:
        return gps
    lo_m, hi_m = dirt.drift_m
    lo, hi = dirt.drift_minutes
    dx = np.zeros(len(gps))
    dy = np.zeros(len(gps))
    for _ in range(n):
        start = rng.uniform(span[0], span[1])
        dur = rng.uniform(lo, hi) * 60.0
        peak, ang = rng.uniform(lo_m, hi_m), rng.uniform(0.0, 2 * math.pi)
        f = np.clip((gps.true_t - start) / dur, 0.0, 1.0)
        w = np.sin(math.pi * f) * peak
        stronger = w > np.hypot(dx, dy)  # overlapping episodes: the stronger one holds
        dx = np.where(stronger, w * math.cos(ang), dx)
        dy = np.where(stronger, w * math.sin(ang), dy)
    hit = (np.hypot(dx, dy) > 0) & (gps.kind == 0)
    if not hit.any():
        return gps
    # measured = true + noise: add the drift to the measured position in the local frame
    mlat, mlon = gps.meas_lat.copy(), gps.meas_lon.copy()
    mlat[hit] += dy[hit] / _M_PER_DEG
    mlon[hit] += dx[hit] / (_M_PER_DEG * _COS_ORIGIN)
    lat, lon = from_wgs84(mlat, mlon, _GPS_CRS[crs_code])
    return replace(gps, meas_lat=mlat, meas_lon=mlon, lat=_round6(lat), lon=_round6(lon))


def _incident_ok(truth: RiderTruth, t: float, phase: str) -> bool:
    if not truth.window[0] <= t < truth.window[1]:
        return False
    if truth.phase_at(t) != phase or truth.phase_at(t, latched=False) != phase:
        return False
    gap = truth.gap_at(t)
    if any(abs(t - f.t) <= 2 * FALL_REPORT_S + 180.0 for f in truth.falls):
        return False  # the fall's own incident is placed apart; next to it rule 6 would be in doubt
    if _stay_begins_after(truth, t):
        return False
    return gap is None or not gap.ambiguous


def _stay_begins_after(truth: RiderTruth, t: float, place: XY | None = None) -> bool:
    """Whether rule 6 could take a stay that begins just after t for this incident's aftermath:
    between orders (after the first), a stop of 2.5 min or more begins within 4 min before to
    6 min after t, within 150 m of where the rider was (margins around rule 6's 5 min and 100 m
    and the engine's tolerance for late reports). Such instants get no incident: rule 6 is
    tested by the falls, and the other incidents keep one clear reading."""
    if any(o.accepted <= t < o.end for o in truth.orders) or not truth.orders or t < truth.orders[0].accepted:
        return False
    nxt = min((o.accepted for o in truth.orders if o.accepted > t), default=math.inf)
    tk, xk, yk = truth.knots_t, truth.knots_x, truth.knots_y
    still = (np.diff(xk) == 0.0) & (np.diff(yk) == 0.0)
    edges = np.diff(np.concatenate([[0], still.astype(np.int8), [0]]))
    first, last = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)  # knots first .. last
    start, end = tk[first], tk[last]
    px, py = place if place is not None else (float(np.interp(t, tk, xk)), float(np.interp(t, tk, yk)))
    near = np.hypot(xk[first] - px, yk[first] - py) <= 150.0
    hit = (start >= t - 240.0) & (start <= min(t + 360.0, nxt)) & (end - start >= 150.0) & near
    return bool(hit.any())


FALL_REPORT_S = 90.0  # a fall is reported at most this late


def _visit(truth: RiderTruth, t: float, t_place: float) -> Record:
    """For an incident reported at t at the place where the rider was at t_place: whether he was
    away from it (over 50 m) throughout t +- 3 min, and the phases he was in during the visit (the
    stretch within 50 m of the place holding t_place): any moment of it is "when he was there"."""
    tk, xk, yk = truth.knots_t, truth.knots_x, truth.knots_y
    c = (float(np.interp(t_place, tk, xk)), float(np.interp(t_place, tk, yk)))
    near_t = _disc_spans(tk, xk, yk, c, 50.0, t - 180.0, t + 180.0)
    spans = _disc_spans(tk, xk, yk, c, 50.0, t_place - 7200.0, t_place + 7200.0)
    visit = next(((a, b) for a, b in spans if a <= t_place <= b), (t_place, t_place))
    ts = np.linspace(visit[0], visit[1], max(2, math.ceil((visit[1] - visit[0]) / 5.0) + 1))
    return {"away_at_reported_time": not near_t,
            "phases_during_visit": sorted({truth.phase_at(float(x)) for x in ts})}


def _fall_phase(truth: RiderTruth, f: FallTruth) -> str:
    """Rule 6 read on the ground truth: the gap up to the fall, and when the next order came."""
    if not any(s <= f.t_a and f.t <= e for s, e in truth.online):
        return "idle"
    if f.t - f.t_a > CONNECT_MAX_S:
        return "idle"
    ts = np.linspace(f.t_a, f.t, max(2, math.ceil((f.t - f.t_a) / 5.0) + 1))
    xs, ys = np.interp(ts, truth.knots_t, truth.knots_x), np.interp(ts, truth.knots_t, truth.knots_y)
    if float(_anchor_dwell(ts, xs, ys, DWELL_RADIUS_M).max()) >= DWELL_MIN_S:
        return "idle"
    nxt = min((o.accepted for o in truth.orders if o.accepted >= f.t_a), default=math.inf)
    return "connecting" if nxt - f.t_a <= CONNECT_MAX_S else "insufficient_data"


def _incident_instant(
    rng: np.random.Generator, truth: RiderTruth, phase: str, boundary: bool
) -> float | None:
    spans = [s for s in truth.timeline if s.phase == phase]
    changes = set(truth.changes)
    for _ in range(60):
        if boundary:
            cands = [(s, end) for s in spans for end in (s.start, s.end) if end in changes]
            if not cands:
                return None
            span, edge = cands[rng.integers(len(cands))]
            offset = rng.uniform(15.0, 110.0)
            if span.end - span.start < offset + 5.0:
                continue
            t = edge + offset if edge == span.start else edge - offset
        else:
            inner = [(s.start + BOUNDARY_S, s.end - BOUNDARY_S) for s in spans
                     if s.end - s.start > 2 * BOUNDARY_S + 2.0]
            if not inner:
                return None
            w = np.array([b - a for a, b in inner])
            a, b = inner[int(rng.choice(len(inner), p=w / w.sum()))]
            t = rng.uniform(a, b)
        t = float(round(t))
        if _incident_ok(truth, t, phase):
            return t
    return None


def _incidents(
    rng: np.random.Generator, opts: SimOptions, truth: RiderTruth
) -> tuple[list[Record], list[Record], list[IncidentTruth]]:
    present = sorted({s.phase for s in truth.timeline})
    changes = np.asarray(truth.changes)
    picked: list[tuple[float, str]] = []
    k = 0
    while len(picked) < opts.incidents_per_rider and k < 4 * opts.incidents_per_rider + 12:
        phase = present[k % len(present)]
        k += 1
        t = _incident_instant(rng, truth, phase, bool(rng.random() < opts.boundary_rate))
        if t is not None and all(t != q for q, _ in picked):
            picked.append((t, phase))
    styles = _pick_styles(rng, opts.ts_style, len(picked))
    at = format_ts(np.array([int(t * 1000) for t, _ in picked], dtype=np.int64), styles)
    incidents: list[Record] = []
    lines: list[Record] = []
    facts: list[IncidentTruth] = []
    g0, g1 = truth.gps_span
    for j, ((t, phase), at_j) in enumerate(zip(picked, at, strict=True)):
        iid = f"INC-{opts.seed}-{truth.index}-{j}"
        near = float(np.min(np.abs(changes - t))) if changes.size else math.inf
        category = "clean" if near >= BOUNDARY_S else "boundary"
        rec: Record = {"incident_id": iid, "rider_id": truth.rider_id, "at": at_j}
        location: tuple[float, float] | None = None
        shift = 0.0
        if opts.time_off_rate > 0 and g0 <= t <= g1 and rng.random() < opts.time_off_rate:
            # reported at the right place, but the time 4-12 min off: he was there at t + shift
            lo_m, hi_m = opts.time_off_minutes
            shift = float(rng.choice([-1.0, 1.0]) * rng.uniform(lo_m, hi_m) * 60.0)
            shift = float(np.clip(t + shift, g0, g1) - t)
            x = np.interp(t + shift, truth.knots_t, truth.knots_x) + rng.normal(0.0, 8.0)
            y = np.interp(t + shift, truth.knots_t, truth.knots_y) + rng.normal(0.0, 8.0)
            if _stay_begins_after(truth, t, (float(x), float(y))):  # rule 6 would take that stay
                shift = 0.0
                x = np.interp(t, truth.knots_t, truth.knots_x) + rng.normal(0.0, 8.0)
                y = np.interp(t, truth.knots_t, truth.knots_y) + rng.normal(0.0, 8.0)
            lat, lon = xy_to_latlon(x, y)
            location = (float(lat), float(lon))
            rec["location"] = {"lat": float(_round6(lat)), "lon": float(_round6(lon))}
        elif opts.time_off_rate > 0 and g0 <= t <= g1:  # the others: the place where he was then
            x = np.interp(t, truth.knots_t, truth.knots_x) + rng.normal(0.0, 8.0)
            y = np.interp(t, truth.knots_t, truth.knots_y) + rng.normal(0.0, 8.0)
            lat, lon = xy_to_latlon(x, y)
            location = (float(lat), float(lon))
            rec["location"] = {"lat": float(_round6(lat)), "lon": float(_round6(lon))}
        elif g0 <= t <= g1 and rng.random() < opts.location_rate:
            if rng.random() < 0.25:  # the rider remembers where he was 10-15 min off
                shift = float(rng.choice([-1.0, 1.0]) * rng.uniform(600.0, 900.0))
                shift = float(np.clip(t + shift, g0, g1) - t)
            x = np.interp(t + shift, truth.knots_t, truth.knots_x) + rng.normal(0.0, 8.0)
            y = np.interp(t + shift, truth.knots_t, truth.knots_y) + rng.normal(0.0, 8.0)
            lat, lon = xy_to_latlon(x, y)
            location = (float(lat), float(lon))
            crs: Crs = "gcj02" if rng.random() < opts.dirt.incident_crs_rate else "wgs84"
            wlat, wlon = from_wgs84(location[0], location[1], crs)
            rec["location"] = {"lat": float(_round6(wlat)), "lon": float(_round6(wlon))}
            if crs != "wgs84":
                rec["crs"] = crs
        incidents.append(rec)
        line: Record = {"incident_id": iid, "phase": phase,
                        "continuous_delivery": phase in CONTINUOUS_PHASES, "category": category}
        if opts.time_off_rate > 0 and shift != 0.0:
            there = truth.phase_at(t + shift)
            line["time_off_s"] = round(-shift, 3)  # reported this much after the rider was there
            line["phase_at_place"] = there
            line["continuous_delivery_at_place"] = there in CONTINUOUS_PHASES
            gap_near = float(np.min(np.abs(changes - (t + shift)))) if changes.size else math.inf
            line["place_category"] = "clean" if gap_near >= BOUNDARY_S else "boundary"
            line.update(_visit(truth, t, t + shift))
        lines.append(line)
        facts.append(IncidentTruth(iid, truth.index, t, phase, category, location, shift))
    for k, f in enumerate(truth.falls):
        iid = f"INC-{opts.seed}-{truth.index}-F{k}"
        t = float(round(f.t + rng.uniform(0.0, FALL_REPORT_S)))
        rec = {"incident_id": iid, "rider_id": truth.rider_id,
               "at": format_ts(np.array([int(t * 1000)], dtype=np.int64), _pick_styles(rng, opts.ts_style, 1))[0]}
        location = None
        if rng.random() < opts.location_rate:
            lat, lon = xy_to_latlon(f.place[0] + rng.normal(0.0, 8.0), f.place[1] + rng.normal(0.0, 8.0))
            location = (float(lat), float(lon))
            rec["location"] = {"lat": float(_round6(lat)), "lon": float(_round6(lon))}
        phase = _fall_phase(truth, f)
        incidents.append(rec)
        lines.append({"incident_id": iid, "phase": phase,
                      "continuous_delivery": None if phase == "insufficient_data" else phase in CONTINUOUS_PHASES,
                      "category": "aftermath", "stopped_working": f.stopped,
                      "stay_min": round((f.stay_end - f.t) / 60.0, 1)})
        facts.append(IncidentTruth(iid, truth.index, t, phase, "aftermath", location, 0.0))
    return incidents, lines, facts


@dataclass(frozen=True, eq=False)
class RiderDay:
    platform: list[Record]
    gps: GpsColumns
    incidents: list[Record]
    truth_lines: list[Record]
    truth: RiderTruth
    facts: list[IncidentTruth]


def simulate_rider(
    rng: np.random.Generator, opts: SimOptions, world: World, index: int, day0: float
) -> RiderDay:
    """Plan, observe and judge one rider's day."""
    rider_id = f"R{opts.seed % 100:02d}{index:03d}"
    plan = _Planner(rng, opts, world, day0)
    plan.run()
    platform, orders_raw, presence = _platform_records(rng, opts, plan, rider_id, index)
    dirt = opts.dirt
    skew_ms = 0
    if dirt.max_skew_s > 0 and rng.random() < 0.8:
        skew_ms = int(round(rng.uniform(-dirt.max_skew_s, dirt.max_skew_s) * 1000.0))
    crs_name = dirt.gps_crs[rng.integers(len(dirt.gps_crs))]
    crs_code = GPS_CRS_FIELD.index(crs_name)
    if crs_name == "wgs84" and rng.random() < 0.5:
        crs_code = 0
    tk, xk, yk = plan.path.arrays()
    online_times = [t for t, _, _ in presence]
    phone_off = plan.phone_off + _outages(rng, dirt, plan.gps_span)
    # the street's extra dirt draws from a generator of its own, so that the rest of the day is
    # the very day generated without it
    street = rng.spawn(1)[0] if dirt.indoor_outage_rate > 0 or dirt.drift_per_hour > 0 else None
    indoor = _indoor_outages(street, dirt, tk, xk, yk) if street is not None and dirt.indoor_outage_rate > 0 else []
    base = RiderTruth(
        rider_id=rider_id, index=index, skew_s=skew_ms / 1000.0, gps_crs=crs_name,
        platforms=plan.platforms, knots_t=tk, knots_x=xk, knots_y=yk, orders=(),
        presence=tuple(presence), online=(), gaps=(), timeline=(), changes=(),
        window=(min(online_times) - 4500.0, max(online_times) + 4500.0),
        gps_span=plan.gps_span, phone_off=tuple(_merge_spans(phone_off + indoor)), falls=tuple(plan.falls),
    )
    truth = _rider_truth(base, orders_raw)
    if indoor:  # sampled as without them (the same draws), then the indoor outages cut out
        gps = _sample_gps(rng, opts, replace(truth, phone_off=tuple(_merge_spans(phone_off))), skew_ms, crs_code)
        gps = gps.take(np.flatnonzero(~_within(gps.true_t, _merge_spans(indoor))))
    else:
        gps = _sample_gps(rng, opts, truth, skew_ms, crs_code)
    if street is not None and dirt.drift_per_hour > 0:
        gps = _drift(street, dirt, gps, truth.gps_span, crs_code)
    incidents, lines, facts = _incidents(rng, opts, truth)
    return RiderDay(platform, gps, incidents, lines, truth, facts)


# --- The day ----------------------------------------------------------------------------


def _shuffle_gps(rng: np.random.Generator, dirt: Dirt, gps: GpsColumns) -> GpsColumns:
    """Duplicate some lines and deliver some a few lines late."""
    n = len(gps)
    dup = rng.random(n) < dirt.duplicate_rate
    idx = np.repeat(np.arange(n), 1 + dup)
    is_copy = np.zeros(idx.size, dtype=bool)
    is_copy[1:] = idx[1:] == idx[:-1]
    gps = gps.take(idx)
    gps = replace(gps, duplicate=is_copy)
    late = rng.random(idx.size) < dirt.reorder_rate
    key = np.arange(idx.size) + np.where(late, rng.integers(1, 7, idx.size) + 0.5, 0.0)
    return gps.take(np.argsort(key, kind="stable"))


_GARBAGE_KINDS = {
    "platform.jsonl": ("not_json", "missing_field", "bad_coord", "bad_ts", "unknown_type"),
    "gps.jsonl": ("not_json", "missing_field", "bad_coord", "bad_ts", "bad_type"),
}
_BAD_TS = ("2026-13-45T25:61:00+08:00", "yesterday", "", "NaN", "2026-05-14 24:30:99")


def _garbage_text(rng: np.random.Generator, kind: str, sample: Record) -> str:
    d = orjson.loads(orjson.dumps(sample))
    if kind == "not_json":
        text = orjson.dumps(d).decode()
        return text[: int(rng.integers(5, len(text) - 2))] if rng.random() < 0.7 else (
            "<html><body>502 Bad Gateway</body></html>"
        )
    if kind == "missing_field":
        keys = ["ts", "rider_id"] + (["lat", "lon"] if "lat" in d else ["type"])
        keys += ["order_id"] if "order_id" in d else []
        del d[keys[int(rng.integers(len(keys)))]]
    elif kind == "bad_coord":
        if "lat" in d:
            d["lat"] = 999.0
        else:
            d["merchant"]["lat"] = 999.0
    elif kind == "bad_ts":
        d["ts"] = _BAD_TS[int(rng.integers(len(_BAD_TS)))]
    elif kind == "unknown_type":
        d["type"] = ("teleported", "rated", "PICKED")[int(rng.integers(3))]
    else:  # bad_type
        d["lat"] = f"{d['lat']}x"
    return orjson.dumps(d).decode()


def _garbage(
    rng: np.random.Generator, n: int, file: str, samples: Sequence[Record], n_valid: int
) -> list[GarbageLine]:
    """n bad lines at random places of a file with n_valid good lines."""
    if n <= 0 or not samples:
        return []
    after = np.sort(rng.integers(0, n_valid + 1, n))
    kinds = _GARBAGE_KINDS[file]
    out = []
    orders = [r for r in samples if "merchant" in r]
    for j, k in enumerate(after.tolist()):
        kind = kinds[int(rng.integers(len(kinds)))]
        pool = orders if kind == "bad_coord" and file == "platform.jsonl" and orders else samples
        sample = pool[int(rng.integers(len(pool)))]
        out.append(GarbageLine(file, k + j + 1, kind, _garbage_text(rng, kind, sample)))
    return out


def generate_day(rng: np.random.Generator, opts: SimOptions) -> Day:
    """Simulate ``opts.riders`` riders' days (deterministic for the generator's state)."""
    if opts.riders < 1 or opts.hours <= 1.0 or opts.interval_s <= 0.5:
        raise ValueError("need riders >= 1, hours > 1 and interval_s > 0.5")
    day0 = local_midnight(opts.date)
    world = make_world(rng, opts.dirt)
    *rider_rngs, post = rng.spawn(opts.riders + 1)
    days = [simulate_rider(r, opts, world, i, day0) for i, r in enumerate(rider_rngs)]
    rider_ids = tuple(d.truth.rider_id for d in days)
    gps = GpsColumns.concat([d.gps for d in days], rider_ids)
    if opts.interleave_riders:
        gps = gps.take(np.argsort(gps.ts_ms, kind="stable"))
    gps = _shuffle_gps(post, opts.dirt, gps)
    platform = [r for d in days for r in d.platform]
    gps_samples = gps.take(post.integers(0, len(gps), min(len(gps), 50))).records()
    garbage = _garbage(post, opts.garbage, "platform.jsonl", platform, len(platform))
    garbage += _garbage(post, opts.garbage, "gps.jsonl", gps_samples, len(gps))
    return Day(
        options=opts, platform=platform, gps=gps,
        incidents=[r for d in days for r in d.incidents],
        truth=[r for d in days for r in d.truth_lines], garbage=garbage,
        riders=[d.truth for d in days], incident_truth=[f for d in days for f in d.facts],
    )


def simulate(opts: SimOptions) -> Day:
    """``generate_day`` with a generator seeded from ``opts.seed``."""
    return generate_day(np.random.default_rng(opts.seed), opts)


# --- Files --------------------------------------------------------------------------------

_NL = orjson.OPT_APPEND_NEWLINE


def _write_lines(path: Path, records: Iterable[Record], garbage: Sequence[GarbageLine]) -> None:
    """One JSON object per line, with the garbage lines at their line numbers.

    Lines go straight to the (buffered) file: holding a million orjson outputs alive at
    once is slow and memory-hungry.
    """
    bad = sorted(garbage, key=lambda g: g.line_no)
    j = 0
    line_no = 1
    with path.open("wb", buffering=1 << 20) as f:
        for rec in records:
            while j < len(bad) and bad[j].line_no == line_no:
                f.write(bad[j].text.encode() + b"\n")
                j, line_no = j + 1, line_no + 1
            f.write(orjson.dumps(rec, option=_NL))
            line_no += 1
        for g in bad[j:]:
            f.write(g.text.encode() + b"\n")


def write_day(out_dir: Path, day: Day) -> None:
    """Write platform.jsonl, gps.jsonl, incidents.jsonl and truth.jsonl into out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_file = {f: [g for g in day.garbage if g.file == f] for f in _GARBAGE_KINDS}
    _write_lines(out_dir / "platform.jsonl", day.platform, by_file["platform.jsonl"])
    _write_lines(out_dir / "gps.jsonl", day.gps.iter_records(), by_file["gps.jsonl"])
    _write_lines(out_dir / "incidents.jsonl", day.incidents, [])
    _write_lines(out_dir / "truth.jsonl", day.truth, [])


def write_manifest(path: Path, day: Day) -> None:
    """A side file for debugging an engine: options, per-rider skew and crs, garbage lines."""
    doc: dict[str, Any] = {
        "options": {f.name: getattr(day.options, f.name) for f in fields(day.options)},
        "riders": [{"rider_id": r.rider_id, "skew_s": r.skew_s, "gps_crs": r.gps_crs,
                    "platforms": list(r.platforms)} for r in day.riders],
        "garbage": [{"file": g.file, "line": g.line_no, "kind": g.kind} for g in day.garbage],
    }
    doc["options"]["dirt"] = {f.name: getattr(day.options.dirt, f.name)
                              for f in fields(day.options.dirt)}
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))


# --- Command line -------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m tests.support.simulate",
        description="Simulate rider days: platform.jsonl, gps.jsonl, incidents.jsonl, truth.jsonl.",
    )
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--preset", choices=PRESETS)
    ap.add_argument("--riders", type=int)
    ap.add_argument("--hours", type=float)
    ap.add_argument("--interval", type=float, help="mean GPS interval while moving, seconds")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--date", help="local start date, YYYY-MM-DD")
    ap.add_argument("--ts-style", choices=("iso", "z", "naive", "epoch", "mixed"))
    dirt = ap.add_mutually_exclusive_group()
    dirt.add_argument("--dirty", dest="dirt", action="store_const", const="dirty")
    dirt.add_argument("--clean", dest="dirt", action="store_const", const="clean")
    ap.add_argument("--garbage", type=int, help="bad lines per feed")
    ap.add_argument("--incidents", type=int, help="incidents per rider")
    ap.add_argument("--interleave", action="store_true", help="GPS lines of all riders by time")
    ap.add_argument("--falls", type=float, help="share of gaps in which the rider falls (rule 6)")
    ap.add_argument("--time-off", type=float, help="share of incidents reported 4-12 min off at the right place")
    ap.add_argument("--manifest", action="store_true", help="also write manifest.json")
    street = ap.add_argument_group("harder streets (issues 15 and 17)")
    street.add_argument("--indoor-outages", type=float, metavar="RATE",
                        help="share of stays of 4 min or more with 1-3 indoor GPS outages of 2-6 min")
    street.add_argument("--pin-offset", type=float, metavar="M",
                        help="merchant and customer pins this far (+-10 m) from the door")
    street.add_argument("--drift-per-hour", type=float, metavar="N",
                        help="GPS drift episodes of 40-120 m lasting 2-6 min, per hour")
    street.add_argument("--no-arrival-events", action="store_true",
                        help="no platform sends arrived_merchant")
    return ap


def options_from_args(args: argparse.Namespace) -> SimOptions:
    """SimOptions from a parsed command line: a preset, then the flags given."""
    opts = preset(args.preset or args.dirt or "dirty")
    if args.dirt == "clean":
        opts = replace(opts, dirt=Dirt.none(), garbage=0)
    elif args.dirt == "dirty" and args.preset is not None:
        opts = replace(opts, dirt=Dirt())
    overrides = {
        "riders": args.riders, "hours": args.hours, "interval_s": args.interval,
        "seed": args.seed, "date": args.date, "ts_style": args.ts_style,
        "garbage": args.garbage, "incidents_per_rider": args.incidents,
        "fall_rate": args.falls, "time_off_rate": args.time_off,
    }
    opts = replace(opts, **{k: v for k, v in overrides.items() if v is not None})
    opts = _street_options(opts, args)
    return replace(opts, interleave_riders=True) if args.interleave else opts


def _street_options(opts: SimOptions, args: argparse.Namespace) -> SimOptions:
    dirt = opts.dirt
    if getattr(args, "indoor_outages", None) is not None:
        dirt = replace(dirt, indoor_outage_rate=args.indoor_outages)
    if getattr(args, "pin_offset", None) is not None:
        dirt = replace(dirt, geocode_error_m=(max(0.0, args.pin_offset - 10.0), args.pin_offset + 10.0))
    if getattr(args, "drift_per_hour", None) is not None:
        dirt = replace(dirt, drift_per_hour=args.drift_per_hour)
    if getattr(args, "no_arrival_events", False):
        dirt = replace(dirt, arrived_merchant_rates=(0.0,))
    return replace(opts, dirt=dirt)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; prints a one-line summary on stderr, nothing on stdout."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["simulate"]:
        args_in = args_in[1:]
    ap = _parser()
    args = ap.parse_args(args_in)
    try:
        opts = options_from_args(args)
        started = time.perf_counter()
        day = simulate(opts)
        write_day(args.out_dir, day)
        if args.manifest:
            write_manifest(args.out_dir / "manifest.json", day)
    except ValueError as exc:
        ap.error(str(exc))
    print(
        f"simulate: {opts.riders} riders, {len(day.gps)} GPS pings, {len(day.platform)} "
        f"platform events, {len(day.incidents)} incidents, {len(day.garbage)} garbage lines "
        f"-> {args.out_dir} in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
