"""DATA_CONTRACT §5: one phase at every instant, as a timeline of segments.

The timeline is built once per rider-day from the platform's orders and presence (platform clock)
and the cleaned, clock-corrected GPS grid; asking for the phase at an instant is a lookup.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from shared.geo import haversine_m, local_xy_m

from .model import Order, Params, Phase, PresenceEvent, Segment
from .motion import Dwell, Grid, longest_dwell

INF = float("inf")
DOOR_LOOKBACK_S = 600.0  # the door is where the rider spent most time in this long before pickup
DOOR_LAST_SEEN_S = 60.0  # ... or, unseen then, where he was in the last minute he was seen
DOOR_CLUSTER_M = 20.0  # positions this close count as one place when finding the door
GEOCODE_SLACK_M = 30.0  # extra radius when only the platform's geocode of the merchant is known
DOOR_MAX_OFF_M = 250.0  # a "door" this far from the geocode is not the merchant's


@dataclass(frozen=True)
class Arrival:
    t: float | None
    how: str  # "event" | "gps" | "gps-geocode" | "none"


def online_intervals(presence: tuple[PresenceEvent, ...], orders: tuple[Order, ...]) -> list[tuple[float, float]]:
    """When the rider was online on at least one platform. A platform that sent orders but no
    presence at all counts as online from its first order to its last."""
    spans: list[tuple[float, float]] = []
    by_platform: dict[str, list[PresenceEvent]] = {}
    for ev in presence:
        by_platform.setdefault(ev.platform, []).append(ev)
    for evs in by_platform.values():
        evs.sort(key=lambda e: (e.t, e.online))
        since: float | None = None
        for ev in evs:
            if ev.online and since is None:
                since = ev.t
            elif not ev.online and since is not None:
                spans.append((since, ev.t))
                since = None
        if since is not None:
            spans.append((since, INF))
    silent = {o.platform for o in orders} - set(by_platform)
    for p in silent:
        mine = [o for o in orders if o.platform == p]
        spans.append((min(o.accepted for o in mine), max(_end(o) for o in mine)))
    return union(spans)


def union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for a, b in sorted(s for s in spans if s[1] > s[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _end(o: Order) -> float:
    return o.ended if o.ended is not None else INF


def covers(spans: list[tuple[float, float]], a: float, b: float) -> bool:
    return any(s <= a and b <= e for s, e in spans)


def _inside(spans: list[tuple[float, float]], t: float) -> bool:
    return any(s <= t < e for s, e in spans)


def infer_arrival(o: Order, grid: Grid, params: Params) -> Arrival:
    """When the rider reached the merchant: the platform's event, else from GPS.

    The door is where the rider stood while waiting for the pickup -- not the platform's geocode,
    which is often tens of metres off (malls, food courts): the place, among the seen positions of
    the last ``DOOR_LOOKBACK_S`` before pickup, near which the rider spent the most time (so a GPS
    drift episode or an indoor outage during the wait does not move it). The arrival is the first
    seen instant after acceptance within the radius of the door: at_merchant is latched, and an
    outage (or a drift) after reaching the door does not undo the arrival."""
    if o.arrived is not None and o.arrived >= o.accepted and (o.picked_up is None or o.arrived <= o.picked_up):
        return Arrival(o.arrived, "event")
    until = o.picked_up if o.picked_up is not None else _end(o)
    if len(grid) == 0 or not np.isfinite(until):
        return Arrival(None, "none")
    g = grid.slice(o.accepted, until + 1e-6)
    seen = g.seen
    if len(g) == 0 or not seen.any():
        return Arrival(None, "none")
    door: tuple[float, float] | None = None
    radius = params.merchant_radius_m
    how = "gps"
    if o.picked_up is not None:
        door = _door(grid.slice(max(o.accepted, o.picked_up - DOOR_LOOKBACK_S), o.picked_up + 1e-6), o.merchant)
        if door is None:
            # not seen in the last minutes before pickup (a long indoor outage): where he was last
            # seen before it, if that is near the merchant
            last = float(g.t[np.flatnonzero(seen)[-1]])
            door = _door(grid.slice(max(o.accepted, last - DOOR_LAST_SEEN_S), last + 1e-6), o.merchant)
    if door is None:
        if o.merchant is None:
            return Arrival(None, "none")
        door, radius, how = o.merchant, radius + GEOCODE_SLACK_M, "gps-geocode"
    with np.errstate(invalid="ignore"):
        inside = seen & (haversine_m(g.lat, g.lon, door[0], door[1]) <= radius)
    first = np.flatnonzero(inside)
    return Arrival(float(g.t[first[0]]), how) if first.size else Arrival(None, "none")


def _door(w: Grid, merchant: tuple[float, float] | None) -> tuple[float, float] | None:
    """The place near which the rider spent the most seen time in ``w`` (within DOOR_MAX_OFF_M of
    the geocode, when there is one): the mean of the positions within DOOR_CLUSTER_M of the
    position with the most such neighbours (ties: the latest, nearest the pickup)."""
    k = np.flatnonzero(w.seen)
    if k.size == 0:
        return None
    lat, lon = w.lat[k], w.lon[k]
    if merchant is not None:
        ok = haversine_m(lat, lon, merchant[0], merchant[1]) <= DOOR_MAX_OFF_M
        lat, lon = lat[ok], lon[ok]
        if lat.size == 0:
            return None
    x, y = local_xy_m(lat, lon, float(lat[-1]), float(lon[-1]))
    # (x_i - x_j)^2 + (y_i - y_j)^2, squared in place (the same operations, fewer temporaries)
    d2 = x[:, None] - x[None, :]
    dy = y[:, None] - y[None, :]
    d2 *= d2
    dy *= dy
    d2 += dy
    near = d2 <= DOOR_CLUSTER_M**2
    count = near.sum(axis=1)
    best = int(np.flatnonzero(count == count.max())[-1])
    sel = near[best]
    return float(lat[sel].mean()), float(lon[sel].mean())


@dataclass(frozen=True)
class Gap:
    start: float  # tA, -inf before the first order
    end: float  # tB, +inf after the last
    prev: Order | None
    next: Order | None
    phase: Phase  # phase of its online parts
    why: str
    dwell: Dwell | None


def classify_gap(start: float, end: float, online: list[tuple[float, float]], grid: Grid,
                 params: Params) -> tuple[Phase, str, Dwell | None]:
    if not (np.isfinite(start) and np.isfinite(end)):
        return Phase.IDLE, "before_first" if not np.isfinite(start) else "after_last", None
    if end - start > params.max_connecting_gap_s:
        return Phase.IDLE, "gap_too_long", None
    if not covers(online, start, end):
        return Phase.IDLE, "went_offline", None
    if end - start < params.dwell_min_s:
        return Phase.CONNECTING, "connected", None  # too short to hold a long enough stay
    dwell = longest_dwell(grid, start, end, params)
    phase, why = _judge(dwell, params)
    g = grid.slice(start, end)
    if g.bridged.any():
        # would the answer differ without the bridging rule? then the explanation says it decided
        plain = replace(grid, bridged=np.zeros_like(grid.bridged))
        if _judge(longest_dwell(plain, start, end, params), params)[0] is not phase:
            dwell = replace(dwell, bridge_decided=True)
    return phase, why, dwell


def _judge(dwell: Dwell, params: Params) -> tuple[Phase, str]:
    if dwell.certain_s >= params.dwell_min_s:
        return Phase.IDLE, "dwelt"
    if dwell.possible_s >= params.dwell_min_s:
        return Phase.INSUFFICIENT_DATA, "unobserved"
    return Phase.CONNECTING, "connected"


@dataclass(frozen=True)
class Timeline:
    segments: tuple[Segment, ...]
    gaps: tuple[Gap, ...]
    arrivals: dict[str, Arrival]
    online: tuple[tuple[float, float], ...]
    orders: tuple[Order, ...]

    @cached_property
    def _starts(self) -> list[float]:
        """The segments' starts, for ``at`` (asked thousands of times of one timeline)."""
        return [s.start for s in self.segments]

    def at(self, t: float) -> Segment:
        i = bisect.bisect_right(self._starts, t) - 1
        return self.segments[max(i, 0)]

    def gap_at(self, t: float) -> Gap | None:
        for g in self.gaps:
            if g.start <= t < g.end:
                return g
        return None


def build_timeline(orders: tuple[Order, ...], presence: tuple[PresenceEvent, ...], grid: Grid,
                   params: Params) -> Timeline:
    """The phase at every instant, as maximal segments with one phase and one set of orders."""
    last_seen = max([o.accepted for o in orders] + [e.t for e in presence] + [
        x for o in orders for x in (o.picked_up, o.arrived, o.ended) if x is not None] + (
        [float(grid.t[-1])] if len(grid) else []), default=0.0)
    # an order with no end stays active until the last thing we know of the rider
    fixed = tuple(o if o.ended is not None else _with_end(o, max(last_seen, o.accepted)) for o in orders)
    online = online_intervals(presence, fixed)
    arrivals = {o.order_id: infer_arrival(o, grid, params) for o in fixed}
    active = union([(o.accepted, _end(o)) for o in fixed])

    gaps: list[Gap] = []
    bounds = [-INF] + [x for span in active for x in span] + [INF]
    for k in range(0, len(bounds), 2):
        a, b = bounds[k], bounds[k + 1]
        if b <= a:
            continue
        prev = max((o for o in fixed if _end(o) == a), key=lambda o: o.accepted, default=None)
        nxt = min((o for o in fixed if o.accepted == b), key=lambda o: _end(o), default=None)
        phase, why, dwell = classify_gap(a, b, online, grid, params)
        gaps.append(Gap(a, b, prev, nxt, phase, why, dwell))

    cuts = {-INF, INF}
    for o in fixed:
        cuts.update(x for x in (o.accepted, o.picked_up, _end(o), arrivals[o.order_id].t) if x is not None)
    for s, e in online:
        cuts.update((s, e))
    edges = sorted(cuts)
    segs: list[Segment] = []
    gi = 0
    spans = [(o, o.accepted, _end(o)) for o in fixed]
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        mid = _mid(a, b)
        live = [o for o, s, e in spans if s <= mid < e]
        if live:
            ids = tuple(sorted(o.order_id for o in live))
            if any(o.picked_up is not None and o.picked_up <= mid for o in live):
                phase, why = Phase.DELIVERING, "picked_up"
            elif any((t := arrivals[o.order_id].t) is not None and t <= mid for o in live):
                phase, why = Phase.AT_MERCHANT, "arrived"
            else:
                phase, why = Phase.TO_PICKUP, "accepted"
        else:
            while gi < len(gaps) - 1 and gaps[gi].end <= mid:
                gi += 1
            gap = gaps[gi]
            ids = tuple(o.order_id for o in (gap.prev, gap.next) if o is not None)
            if not _inside(online, mid):
                phase, why = Phase.OFFLINE, "offline"
            else:
                phase, why = gap.phase, gap.why
        if segs and segs[-1].phase == phase and segs[-1].orders == ids and segs[-1].why == why:
            last = segs[-1]
            segs[-1] = Segment(last.start, b, phase, ids, why)
        else:
            segs.append(Segment(a, b, phase, ids, why))
    return Timeline(tuple(segs), tuple(gaps), arrivals, tuple(online), fixed)


def _mid(a: float, b: float) -> float:
    if not (math.isfinite(a) or math.isfinite(b)):
        return 0.0
    if not math.isfinite(a):
        return b - 1.0
    if not math.isfinite(b):
        return a + 1.0
    return (a + b) / 2.0


def _with_end(o: Order, t: float) -> Order:
    return replace(o, ended=t, end_kind=None)
