"""Motion on a regular time grid: where the rider was every few seconds, where he stood still,
and the longest he stayed in one place. Samples inside an observation gap are *unknown*: they are
never counted as a stay (a lower bound) but may hide one (an upper bound) -- unless the gap is
*bridged*: an outage of at most ``Params.bridge_max_s`` whose two ends lie within
``Params.bridge_radius_m`` of each other (a phone losing GPS indoors, in a mall or a food court) is
taken as spent where it began and ended. Bridged samples keep ``known`` False (nobody saw the
rider then) but carry a position, and count as observed for stays and arrivals (``seen``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shared.geo import haversine_m, local_xy_m

from .model import F64, Params, Track

STEP_S = 5.0
_SMOOTH = 2  # samples each side of the centred moving average


@dataclass(frozen=True)
class Grid:
    t: F64  # regular instants
    lat: F64  # smoothed positions (NaN where unknown)
    lon: F64
    known: npt.NDArray[np.bool_]
    bridged: npt.NDArray[np.bool_]  # unknown, but inside an outage bridged by the rule above
    drift: npt.NDArray[np.bool_]  # known, but a drift episode: position replaced (see mark_drift)

    @property
    def seen(self) -> npt.NDArray[np.bool_]:
        """Observed or bridged: what a stay (and an arrival) may be built on."""
        out: npt.NDArray[np.bool_] = self.known | self.bridged
        return out

    def __len__(self) -> int:
        return int(self.t.shape[0])

    def at(self, t: float) -> tuple[float, float] | None:
        """Position at an instant, or None if the rider was not observed then."""
        if len(self) == 0 or t < self.t[0] or t > self.t[-1]:
            return None
        i = int(round((t - self.t[0]) / (self.t[1] - self.t[0]))) if len(self) > 1 else 0
        if not self.known[i]:
            return None
        return float(self.lat[i]), float(self.lon[i])

    def slice(self, t0: float, t1: float) -> Grid:
        i, j = np.searchsorted(self.t, [t0, t1], side="left")
        return Grid(self.t[i:j], self.lat[i:j], self.lon[i:j], self.known[i:j], self.bridged[i:j], self.drift[i:j])

    def shifted(self, dt: float) -> Grid:
        return Grid(self.t + dt, self.lat, self.lon, self.known, self.bridged, self.drift)


def resample(track: Track, params: Params, step: float = STEP_S) -> Grid:
    """Linear interpolation of a clean track onto a regular grid, lightly smoothed; samples between
    fixes further apart than the observation-gap limit are unknown."""
    if len(track) == 0:
        z = np.zeros(0)
        return Grid(z, z, z, np.zeros(0, dtype=bool), np.zeros(0, dtype=bool), np.zeros(0, dtype=bool))
    t0 = np.floor(track.t[0] / step) * step
    t = np.arange(t0, track.t[-1] + step, step)
    lat = np.interp(t, track.t, track.lat)
    lon = np.interp(t, track.t, track.lon)
    # known: the bracketing fixes are close enough in time
    j = np.clip(np.searchsorted(track.t, t, side="right"), 1, len(track) - 1) if len(track) > 1 else np.zeros_like(t, dtype=int)
    if len(track) > 1:
        span = track.t[j] - track.t[j - 1]
        known = (span <= params.observation_gap_s) | (np.abs(t - track.t[j - 1]) <= step) | (np.abs(t - track.t[j]) <= step)
    else:
        known = np.abs(t - track.t[0]) <= step
    known &= (t >= track.t[0] - step) & (t <= track.t[-1] + step)
    bridged = _bridged(track, t, params) & ~known
    seen = known | bridged
    lat, lon = _smooth(lat, seen), _smooth(lon, seen)
    lat = np.where(seen, lat, np.nan)
    lon = np.where(seen, lon, np.nan)
    return mark_drift(Grid(t, lat, lon, known, bridged, np.zeros(t.shape, dtype=bool)), params)


def mark_drift(grid: Grid, params: Params) -> Grid:
    """Drift told apart from movement. A standing phone's fix can wander tens of metres off and
    back for minutes (multipath between buildings); a rider who rides off comes back, if ever,
    at riding speed. An excursion is drift when the position leaves the place it was at (further
    than ``bridge_radius_m``), stays within ``drift_max_m`` of it, comes back within
    ``bridge_radius_m`` of it within ``drift_max_s``, and where seen never moves faster than
    ``drift_max_speed_mps`` over 30 s. Its seen samples are marked ``drift`` and placed on the
    straight line between where it left and where it came back; an outage inside it stays unseen
    (part of a drift may hide in an indoor outage)."""
    n = len(grid)
    if n < 3 or params.drift_max_s <= 0:
        return grid
    step = float(grid.t[1] - grid.t[0])
    w = int(params.drift_max_s / step)
    x, y = local_xy_m(grid.lat, grid.lon, float(np.nanmean(grid.lat)), float(np.nanmean(grid.lon)))
    seen = grid.seen
    # speed over a 30 s baseline, centred
    k = max(1, int(round(15.0 / step)))
    lo = np.clip(np.arange(n) - k, 0, n - 1)
    hi = np.clip(np.arange(n) + k, 0, n - 1)
    with np.errstate(invalid="ignore"):
        v = np.hypot(x[hi] - x[lo], y[hi] - y[lo]) / np.maximum((hi - lo) * step, step)
    with np.errstate(invalid="ignore"):
        fast = seen & (v > params.drift_max_speed_mps)  # unknown speed (next to an outage) is not fast
    # an excursion lies inside one run free of fast seen samples: only runs whose seen extent
    # exceeds the return radius can hold one (a rider standing still, or riding, has none)
    out = np.zeros(n, dtype=bool)
    lat, lon = grid.lat.copy(), grid.lon.copy()
    r = params.bridge_radius_m
    edges = np.diff(np.concatenate([[0], (~fast).astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    runs = _wide_runs(starts, ends, x, y, seen, r)
    if runs:
        _excursions(runs, w, x, y, seen, grid, params, out, lat, lon)
    if not out.any():
        return grid
    return Grid(grid.t, lat, lon, grid.known, grid.bridged, out)


def _wide_runs(starts: npt.NDArray[np.intp], ends: npt.NDArray[np.intp], x: F64, y: F64,
               seen: npt.NDArray[np.bool_], r: float) -> list[tuple[int, int]]:
    """The runs [a, b) with at least three seen samples whose seen extent exceeds ``r``:
    hypot(ptp(x), ptp(y)) over the seen samples, all runs at once (max, min and their difference
    are exact, hypot is taken element by element: the same floats as run by run)."""
    if starts.size == 0:
        return []
    count = np.concatenate([[0], np.cumsum(seen)])
    many = count[ends] - count[starts] >= 3
    starts, ends = starts[many], ends[many]
    if starts.size == 0:
        return []
    # reduceat over [a0, b0), [b0, a1), [a1, b1), ...: every other one is a run (a sentinel
    # element makes b = n a valid index)
    cuts = np.stack([starts, ends], axis=1).ravel()
    ext = []
    for v in (x, y):
        hi = np.append(np.where(seen, v, -np.inf), -np.inf)
        lo = np.append(np.where(seen, v, np.inf), np.inf)
        ext.append(np.maximum.reduceat(hi, cuts)[::2] - np.minimum.reduceat(lo, cuts)[::2])
    wide = np.hypot(ext[0], ext[1]) > r  # no two samples further apart than r: no excursion
    return list(zip(starts[wide].tolist(), ends[wide].tolist(), strict=True))


_BRIDGE_SIDE = 3  # fixes each side of an outage whose median is where it began / ended
_BRIDGE_SIDE_S = 120.0  # ... taken from this close to the outage


def _bridged(track: Track, t: F64, params: Params) -> npt.NDArray[np.bool_]:
    """Grid instants inside an outage bridged by the rule of the module docstring: longer than the
    observation-gap limit, at most ``bridge_max_s``, and the median of the last few fixes before
    it within ``bridge_radius_m`` of the median of the first few after it."""
    out = np.zeros(t.shape, dtype=bool)
    if len(track) < 2 or params.bridge_max_s <= params.observation_gap_s:
        return out
    dt = np.diff(track.t)
    for k in np.flatnonzero((dt > params.observation_gap_s) & (dt <= params.bridge_max_s)).tolist():
        a = [i for i in range(max(0, k - _BRIDGE_SIDE + 1), k + 1) if track.t[k] - track.t[i] <= _BRIDGE_SIDE_S]
        b = [i for i in range(k + 1, min(len(track), k + 1 + _BRIDGE_SIDE)) if track.t[i] - track.t[k + 1] <= _BRIDGE_SIDE_S]
        d = float(haversine_m(float(np.median(track.lat[a])), float(np.median(track.lon[a])),
                              float(np.median(track.lat[b])), float(np.median(track.lon[b]))))
        if d <= params.bridge_radius_m:
            out |= (t > track.t[k]) & (t < track.t[k + 1])
    return out


def _excursions(runs: list[tuple[int, int]], w: int, x: F64, y: F64, seen: npt.NDArray[np.bool_], grid: Grid,
                params: Params, out: npt.NDArray[np.bool_], lat: F64, lon: F64) -> None:
    """Mark the drift excursions inside the runs [a, b) free of fast seen samples (see mark_drift),
    run after run: where each candidate leaves and comes back is worked out for all runs at once
    (a row per candidate, bounded by its own run), then the candidates are taken in order."""
    r = params.bridge_radius_m
    # every other sample: any sample of the place before leaving will do
    parts = [(np.arange(a, b - 2, 2), b) for a, b in runs]
    cand = np.concatenate([c for c, _ in parts])
    end = np.concatenate([np.full(c.size, b, dtype=c.dtype) for c, b in parts])
    keep = seen[cand]
    cand, end = cand[keep], end[keep]
    # most never leave: every seen sample of their next w within r / sqrt(2) of them on both axes
    # (so within r); only the others are looked at sample by sample
    keep = ~_stays_put(cand, w, x, y, seen, r)
    cand, end = cand[keep], end[keep]
    if cand.size == 0:
        return
    off = np.arange(1, w + 1)
    ahead = cand[:, None] + off[None, :]
    j = np.minimum(ahead, end[:, None] - 1)
    valid = ahead < end[:, None]
    outside, inside = beyond(x[j] - x[cand, None], y[j] - y[cand, None], r)  # NaN (unseen): neither
    away = valid & outside
    left = away.any(axis=1)
    k_out = np.argmax(away, axis=1)
    back = valid & inside & (off[None, :] > k_out[:, None] + 1)
    k_back = np.where(back.any(axis=1), np.argmax(back, axis=1), -1)
    sel = left & (k_back >= 0)
    if not sel.any():
        return
    c_all = cand[sel]
    e_all = c_all + off[k_back[sel]]  # back
    # the last seen sample before it first leaves (c itself is seen)
    s0_all = np.maximum.accumulate(np.where(seen, np.arange(seen.shape[0]), -1))[c_all + k_out[sel]]
    too_far = _too_far(c_all, s0_all, e_all, w, x, y, params.drift_max_m)
    for c, s0, e, far in zip(c_all.tolist(), s0_all.tolist(), e_all.tolist(), too_far.tolist(), strict=True):
        if out[c]:  # departures inside a marked excursion are part of it
            continue
        if far:  # further than drift_max_m from where it left, somewhere in between
            continue
        seg = slice(s0 + 1, e)
        mine = seen[seg]
        f = (grid.t[seg] - grid.t[s0]) / (grid.t[e] - grid.t[s0])
        lat[seg] = np.where(mine, grid.lat[s0] + f * (grid.lat[e] - grid.lat[s0]), lat[seg])
        lon[seg] = np.where(mine, grid.lon[s0] + f * (grid.lon[e] - grid.lon[s0]), lon[seg])
        out[seg] |= mine


def _too_far(c: npt.NDArray[np.intp], s0: npt.NDArray[np.intp], e: npt.NDArray[np.intp], w: int, x: F64, y: F64,
             limit: float) -> npt.NDArray[np.bool_]:
    """For each excursion (from c, last seen there at s0, back at e): some sample in (s0, e) lies
    further than ``limit`` from c (hypot, exactly: beyond). An excursion's stretch always holds
    the seen sample where it first left, so this is ``nanmax(hypot(...)) > limit``."""
    k = np.arange(w + 1)
    q = s0[:, None] + 1 + k[None, :]
    inside = q < e[:, None]
    q = np.minimum(q, x.shape[0] - 1)
    far = beyond(x[q] - x[c][:, None], y[q] - y[c][:, None], limit)[0] & inside
    out: npt.NDArray[np.bool_] = np.logical_or.reduce(far, axis=1)
    return out


def _stays_put(cand: npt.NDArray[np.intp], w: int, x: F64, y: F64, seen: npt.NDArray[np.bool_],
               r: float) -> npt.NDArray[np.bool_]:
    """For each sample c of ``cand``: every seen sample of [c, c + w] lies within r / sqrt(2) (less
    a relative 1e-9) of it in x and in y, so hypot(dx, dy) < r for each: it never leaves. Sliding
    maxima and minima are exact, and fl(x_j - x_c) <= fl(max - x_c) as rounding is monotone."""
    bound = r / np.sqrt(2.0) * (1.0 - _SURE)
    ok = np.ones(cand.shape[0], dtype=bool)
    if cand.size == 0:
        return ok
    # only the stretch the candidates' windows cover
    a, b = int(cand[0]), min(seen.shape[0], int(cand[-1]) + w + 1)
    k = cand - a
    for v in (x, y):
        part, known = v[a:b], seen[a:b]
        hi = _sliding(np.where(known, part, -np.inf), w + 1, np.maximum)[k]
        lo = _sliding(np.where(known, part, np.inf), w + 1, np.minimum)[k]
        ok &= (hi - part[k] <= bound) & (part[k] - lo <= bound)
    return ok


def _sliding(v: F64, n: int, op: np.ufunc) -> F64:
    """op (np.maximum or np.minimum) over v[p : p + n] for every p (fewer at the end)."""
    size = v.shape[0]
    padded = np.concatenate([v, np.full(n - 1, -np.inf if op is np.maximum else np.inf)])
    out: F64 = v.copy()
    for k in range(1, n):
        op(out, padded[k:k + size], out=out)
    return out


_SURE = 1e-9  # relative margin of r^2 beyond which dx^2 + dy^2 decides hypot(dx, dy) against r


def beyond(dx: F64, dy: F64, r: float) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """``hypot(dx, dy) > r`` and ``hypot(dx, dy) <= r`` (both False where NaN), with hypot (slow)
    taken only where dx^2 + dy^2 lies within a relative 1e-9 of r^2: elsewhere the sum of squares
    (a few ulps off) and hypot (under an ulp off) cannot fall on different sides of r."""
    s = dx * dx + dy * dy
    r2 = r * r
    with np.errstate(invalid="ignore"):
        outside = s > r2 * (1.0 + _SURE)
        inside = s < r2 * (1.0 - _SURE)
        edge = ~(outside | inside) & (s == s)  # NaN is neither
    if edge.any():
        d = np.hypot(dx[edge], dy[edge])
        outside[edge] = d > r
        inside[edge] = d <= r
    return outside, inside


def _smooth(x: F64, known: npt.NDArray[np.bool_]) -> F64:
    w = 2 * _SMOOTH + 1
    xv = np.where(known, x, 0.0)
    kv = known.astype(np.float64)
    kernel = np.ones(w)
    # "full" then the centred slice: mode="same" returns the kernel's length when the series is
    # shorter than the kernel (two to four samples), which does not broadcast against x
    n = x.shape[0]
    num = np.convolve(xv, kernel, mode="full")[_SMOOTH:_SMOOTH + n]
    den = np.convolve(kv, kernel, mode="full")[_SMOOTH:_SMOOTH + n]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, x)


@dataclass(frozen=True)
class Stop:
    start: float
    end: float
    lat: float
    lon: float


LEAVE_M = 10.0  # metres from the stop's centre that mean the rider has left it


def stops(grid: Grid, params: Params, min_s: float = 20.0, baseline_s: float = 30.0) -> list[Stop]:
    """Runs of standing still (speed over a short baseline below the stationary limit)."""
    n = len(grid)
    if n < 3:
        return []
    step = float(grid.t[1] - grid.t[0])
    k = max(1, int(round(baseline_s / step / 2)))
    lo = np.clip(np.arange(n) - k, 0, n - 1)
    hi = np.clip(np.arange(n) + k, 0, n - 1)
    with np.errstate(invalid="ignore"):
        d = haversine_m(grid.lat[lo], grid.lon[lo], grid.lat[hi], grid.lon[hi])
        v = d / np.maximum((hi - lo) * step, step)
    seen = grid.seen
    still = seen & seen[lo] & seen[hi] & (v < params.stationary_speed_mps)
    edges = np.diff(np.concatenate([[0], still.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    long_enough = grid.t[ends] - grid.t[starts] >= min_s
    starts, ends = starts[long_enough], ends[long_enough]
    if starts.size == 0:
        return []
    cum_lat = np.concatenate([[0.0], np.cumsum(np.nan_to_num(grid.lat))])
    cum_lon = np.concatenate([[0.0], np.cumsum(np.nan_to_num(grid.lon))])
    size = ends - starts + 1
    lat = (cum_lat[ends + 1] - cum_lat[starts]) / size
    lon = (cum_lon[ends + 1] - cum_lon[starts]) / size
    # the speed test flags "moving" half a baseline early: the stop ends when the rider actually
    # leaves its place, at the first sample after the flagged end further than LEAVE_M from it
    look = np.clip(ends[:, None] + np.arange(2 * k + 2)[None, :], 0, n - 1)
    with np.errstate(invalid="ignore"):
        gone = haversine_m(grid.lat[look], grid.lon[look], lat[:, None], lon[:, None]) > LEAVE_M
    first = np.argmax(gone, axis=1)
    left = np.where(gone.any(axis=1), grid.t[look[np.arange(look.shape[0]), first]] - step / 2, grid.t[ends])
    end_t = np.maximum(left, grid.t[ends])
    return [Stop(float(a), float(b), float(la), float(lo))
            for a, b, la, lo in zip(grid.t[starts], end_t, lat, lon, strict=True)]


@dataclass(frozen=True)
class Dwell:
    """The longest stay within the radius inside a window: ``certain_s`` counts observed (and
    bridged) time only; ``possible_s`` also counts unobserved time in which a stay cannot be ruled
    out, on both sides of what was seen; ``bridged_s``: the part of ``certain_s`` that was bridged."""

    certain_s: float
    possible_s: float
    start: float | None
    end: float | None
    lat: float | None
    lon: float | None
    unobserved_s: float
    bridged_s: float = 0.0
    bridge_decided: bool = False  # without the bridging rule the gap would be judged otherwise
    drift_s: float = 0.0  # the part of ``certain_s`` in drift episodes (mark_drift)


def longest_dwell(grid: Grid, t0: float, t1: float, params: Params) -> Dwell:
    """Longest time the rider stayed within ``dwell_radius_m`` of one place inside [t0, t1).

    Anchor-based on the smoothed grid: from each sample, the stay lasts until the first seen
    sample further than the radius. Quadratic in the window, which is at most the longest gap that
    can still be a connection (30 min = 360 samples).

    The upper bound looks both ways: unobserved time just before an anchor (back to the last fix,
    or to t0) and just after its last sample within the radius (up to the next fix, or to t1) may
    have been spent at the anchor, less the time needed to ride between the anchor and where the
    rider was last / is next seen -- also when that fix lies outside the window (the drop-off
    before the gap, the ride to the next pickup after it)."""
    i0, i1 = (int(v) for v in np.searchsorted(grid.t, [t0, t1], side="left"))
    g = grid.slice(t0, t1)
    n = len(g)
    step = float(grid.t[1] - grid.t[0]) if len(grid) > 1 else STEP_S
    seen = g.known | _bridged_inside(g.bridged)
    # unobserved: part of the window outside the grid, and unseen samples
    covered = n * step
    unobserved = max(0.0, (t1 - t0) - covered) + float((~seen).sum()) * step
    # where the rider was last seen before the window and is first seen after it
    before = np.flatnonzero(grid.known[:i0])
    after = np.flatnonzero(grid.known[i1:])
    prev_fix = (float(grid.t[before[-1]]) + step, float(grid.lat[before[-1]]), float(grid.lon[before[-1]])) \
        if before.size else None
    next_fix = (float(grid.t[i1 + after[0]]), float(grid.lat[i1 + after[0]]), float(grid.lon[i1 + after[0]])) \
        if after.size else None
    if n == 0 or not seen.any():
        bound = max(0.0, t1 - t0)
        if prev_fix is not None and next_fix is not None:
            d = float(haversine_m(prev_fix[1], prev_fix[2], next_fix[1], next_fix[2]))
            bound -= max(0.0, d - 2 * params.dwell_radius_m) / params.plausible_speed_mps
        return Dwell(0.0, max(0.0, bound), None, None, None, None, unobserved)
    lat0, lon0 = float(np.nanmean(g.lat[seen])), float(np.nanmean(g.lon[seen]))
    x, y = local_xy_m(np.where(seen, g.lat, np.nan), np.where(seen, g.lon, np.nan), lat0, lon0)
    xf, yf = x.astype(np.float32), y.astype(np.float32)
    # squared distances dx * dx + dy * dy, worked out in place (the same float32 operations, on
    # fewer n x n temporaries)
    d2 = xf[:, None] - xf[None, :]
    dy = yf[:, None] - yf[None, :]
    d2 *= d2
    dy *= dy
    d2 += dy
    with np.errstate(invalid="ignore"):
        far = d2 > np.float32(params.dwell_radius_m**2)  # NaN compares False: unknown is not "far"
    upper = _upper(n)
    far &= upper
    idx = np.arange(n)
    # first far sample after i (n if none)
    first_far = _first_true(far, idx)
    # certain: seen, uninterrupted time within the radius
    breaks = ~seen[None, :] & upper
    breaks |= far
    first_break = _first_true(breaks, idx)
    certain = np.where(seen, (first_break - idx) * step, 0.0)

    def travel(tx: F64, ty: F64) -> F64:
        # NaN (an unseen anchor) is no distance; metres within a city are never infinite, so this
        # is np.nan_to_num(..., nan=0.0) without its overhead
        reach = np.hypot(tx - x, ty - y)
        reach[np.isnan(reach)] = 0.0
        out: F64 = np.maximum(0.0, reach - params.dwell_radius_m) / params.plausible_speed_mps
        return out

    # The upper bound does not let a lone fix rule a stay out: a seen stretch shorter than
    # LONE_FIX_S between two unseen ones (a phone briefly getting a poor fix indoors) counts as
    # unseen, and ends a run only when it lies further than drift_max_m from the anchor.
    seen_c = seen  # what the lower bound stands on
    weak = _lone_fixes(seen, step)
    if weak.any():
        with np.errstate(invalid="ignore"):
            very_far = (d2 > np.float32(params.drift_max_m**2)) & upper
        far = (far & ~weak[None, :]) | (very_far & weak[None, :])
        first_far = _first_true(far, idx)
        seen = seen & ~weak
    # forward: the run may continue across unseen stretches; one that ends in a far sample can only
    # have been spent here minus the time needed to ride to where the rider reappears
    last_seen = np.maximum.accumulate(np.where(seen, idx, -1))
    unk_start = np.concatenate([[0], last_seen + 1])  # start of the unseen stretch just before j
    j = first_far
    u = unk_start[j]
    jj = np.minimum(j, n - 1)
    hidden_fwd = np.where(j < n, np.maximum(0.0, (j - u) * step - travel(x[jj], y[jj])), 0.0)
    seen_part = np.where(j < n, (u - idx) * step, (unk_start[n] - idx) * step)
    # ... and when no far sample follows, the time from the last seen sample to t1, less the ride
    # to where the rider is next seen after the window
    run_end = float(g.t[0]) + unk_start[n] * step  # end of the last seen sample
    if next_fix is not None:
        nx, ny = local_xy_m(np.array([next_fix[1]]), np.array([next_fix[2]]), lat0, lon0)
        leave_by = np.minimum(t1, next_fix[0] - travel(nx, ny))
    else:
        leave_by = np.full(n, t1)
    hidden_end = np.where(j == n, np.maximum(0.0, leave_by - run_end), 0.0)
    # backward: unseen time just before an anchor whose previous sample is unseen, back to the
    # last seen sample (in the window or before it) or to t0, less the ride from there
    prev_in = np.concatenate([[-1], last_seen[:-1]])  # last seen index before i (-1: none in window)
    pi = np.maximum(prev_in, 0)
    t_prev = np.where(prev_in >= 0, g.t[pi] + step, -np.inf)
    back_travel = np.where(prev_in >= 0, travel(x[pi], y[pi]), 0.0)
    if prev_fix is not None:
        px, py = local_xy_m(np.array([prev_fix[1]]), np.array([prev_fix[2]]), lat0, lon0)
        t_prev = np.where(prev_in >= 0, t_prev, prev_fix[0])
        back_travel = np.where(prev_in >= 0, back_travel, travel(px, py))
    arrive_by = np.maximum(t0, t_prev + back_travel)
    gap_before = (idx == 0) | ~np.concatenate([[True], seen[:-1]])
    hidden_back = np.where(gap_before, np.maximum(0.0, g.t - arrive_by), 0.0)
    possible = np.where(seen, seen_part + hidden_fwd + hidden_end + hidden_back, 0.0)
    # a stay hidden entirely inside an unseen stretch: its length minus the time needed to travel
    hidden = _hidden_stay_bound(g, step, params)
    i = int(np.argmax(certain))
    best_possible = float(max(possible.max(initial=0.0), hidden, certain.max(initial=0.0)))
    start = float(g.t[i])
    k = min(int(first_break[i]), n)
    end = float(g.t[k - 1]) + step if k > i else start
    bridged_s = float((seen_c & ~g.known)[i:k].sum()) * step
    drift_s = float(g.drift[i:k].sum()) * step
    return Dwell(float(certain[i]), best_possible, start, end,
                 float(g.lat[i]) if seen_c[i] else None, float(g.lon[i]) if seen_c[i] else None, unobserved, bridged_s,
                 drift_s=drift_s)


LONE_FIX_S = 30.0


def _first_true(m: npt.NDArray[np.bool_], idx: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """The column of each row's first True (the number of columns where a row has none)."""
    first = np.argmax(m, axis=1)
    out: npt.NDArray[np.intp] = np.where(m[idx, first], first, m.shape[1])
    return out


def _lone_fixes(seen: npt.NDArray[np.bool_], step: float) -> npt.NDArray[np.bool_]:
    """Seen stretches shorter than LONE_FIX_S with unseen samples on both sides."""
    n = seen.shape[0]
    edges = np.diff(np.concatenate([[0], seen.astype(np.int8), [0]]))
    out = np.zeros(n, dtype=bool)
    for a, b in zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True):
        if a > 0 and b < n and (b - a) * step < LONE_FIX_S:
            out[a:b] = True
    return out


def _bridged_inside(bridged: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """The bridged stretches that lie inside the window, seen on both sides within it: an outage
    that straddles the window's start or end (the rider went into the customer's building before
    the order ended) was not seen to begin or end inside the window, so it stays unobserved there."""
    out = bridged.copy()
    n = out.shape[0]
    if n and out[0]:
        out[: int(np.argmin(out)) if not out.all() else n] = False
    if n and out[-1]:
        k = int(np.argmin(out[::-1])) if not out.all() else n
        out[n - k:] = False
    return out


_UPPER = np.triu(np.ones((720, 720), dtype=bool), 1)  # an hour of samples; made once, not per gap
_UPPER.flags.writeable = False


def _upper(n: int) -> npt.NDArray[np.bool_]:
    """The strict upper triangle of an n x n matrix (True where column > row), read-only."""
    return _UPPER[:n, :n] if n <= _UPPER.shape[0] else np.triu(np.ones((n, n), dtype=bool), 1)


def _hidden_stay_bound(g: Grid, step: float, params: Params) -> float:
    unknown = ~(g.known | _bridged_inside(g.bridged))
    if not unknown.any():
        return 0.0
    edges = np.diff(np.concatenate([[0], unknown.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    best = 0.0
    for a, b in zip(starts, ends, strict=True):
        dur = (b - a + 1) * step
        if a > 0 and b < len(g):
            d = float(haversine_m(g.lat[a - 1], g.lon[a - 1], g.lat[b], g.lon[b]))
            dur -= max(0.0, d - 2 * params.dwell_radius_m) / params.plausible_speed_mps
        best = max(best, dur)
    return best
