"""Motion on a regular time grid: where the rider was every few seconds, where he stood still,
and the longest he stayed in one place. Samples inside an observation gap are *unknown*: they are
never counted as a stay (a lower bound) but may hide one (an upper bound)."""

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
        return Grid(self.t[i:j], self.lat[i:j], self.lon[i:j], self.known[i:j])


def resample(track: Track, params: Params, step: float = STEP_S) -> Grid:
    """Linear interpolation of a clean track onto a regular grid, lightly smoothed; samples between
    fixes further apart than the observation-gap limit are unknown."""
    if len(track) == 0:
        z = np.zeros(0)
        return Grid(z, z, z, np.zeros(0, dtype=bool))
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
    lat, lon = _smooth(lat, known), _smooth(lon, known)
    lat = np.where(known, lat, np.nan)
    lon = np.where(known, lon, np.nan)
    return Grid(t, lat, lon, known)


def _smooth(x: F64, known: npt.NDArray[np.bool_]) -> F64:
    w = 2 * _SMOOTH + 1
    xv = np.where(known, x, 0.0)
    kv = known.astype(np.float64)
    kernel = np.ones(w)
    num = np.convolve(xv, kernel, mode="same")
    den = np.convolve(kv, kernel, mode="same")
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
    still = grid.known & grid.known[lo] & grid.known[hi] & (v < params.stationary_speed_mps)
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
    """The longest stay within the radius inside a window: ``certain_s`` counts observed time
    only; ``possible_s`` also counts unobserved time in which a stay cannot be ruled out."""

    certain_s: float
    possible_s: float
    start: float | None
    end: float | None
    lat: float | None
    lon: float | None
    unobserved_s: float


def longest_dwell(grid: Grid, t0: float, t1: float, params: Params) -> Dwell:
    """Longest time the rider stayed within ``dwell_radius_m`` of one place inside [t0, t1).

    Anchor-based on the smoothed grid: from each sample, the stay lasts until the first known
    sample further than the radius. Quadratic in the window, which is at most the longest gap that
    can still be a connection (30 min = 360 samples)."""
    g = grid.slice(t0, t1)
    n = len(g)
    step = float(grid.t[1] - grid.t[0]) if len(grid) > 1 else STEP_S
    # unobserved: part of the window outside the grid, and unknown samples
    covered = n * step
    unobserved = max(0.0, (t1 - t0) - covered) + float((~g.known).sum()) * step
    if n == 0:
        return Dwell(0.0, max(0.0, t1 - t0), None, None, None, None, unobserved)
    lat0, lon0 = float(np.nanmean(g.lat)) if g.known.any() else 0.0, float(np.nanmean(g.lon)) if g.known.any() else 0.0
    x, y = local_xy_m(g.lat, g.lon, lat0, lon0)
    xf, yf = x.astype(np.float32), y.astype(np.float32)
    dx = xf[:, None] - xf[None, :]
    dy = yf[:, None] - yf[None, :]
    with np.errstate(invalid="ignore"):
        far = dx * dx + dy * dy > np.float32(params.dwell_radius_m**2)  # NaN compares False: unknown is not "far"
    upper = _upper(n)
    far &= upper
    # first far sample after i (n if none)
    has_far = far.any(axis=1)
    first_far = np.where(has_far, np.argmax(far, axis=1), n)
    idx = np.arange(n)
    # certain: observed, uninterrupted time within the radius
    breaks = (far | ~g.known[None, :]) & upper
    first_break = np.where(breaks.any(axis=1), np.argmax(breaks, axis=1), n)
    certain = np.where(g.known, (first_break - idx) * step, 0.0)
    # possible: the run may continue across unknown stretches; one that ends in a far fix can only
    # have been spent here minus the time needed to ride to where the rider reappears
    last_known = np.maximum.accumulate(np.where(g.known, idx, -1))
    unk_start = np.concatenate([[0], last_known + 1])  # start of the unknown stretch just before j
    j = first_far
    u = unk_start[j]
    jj = np.minimum(j, n - 1)
    reach = np.hypot(x[jj] - x, y[jj] - y)
    travel = np.maximum(0.0, np.nan_to_num(reach, nan=0.0) - params.dwell_radius_m) / params.plausible_speed_mps
    hidden_part = np.where(j < n, np.maximum(0.0, (j - u) * step - travel), 0.0)
    seen_part = np.where(j < n, (u - idx) * step, (n - idx) * step)
    possible = np.where(g.known, seen_part + hidden_part, 0.0)
    # time of the window before the first sample and after the last is unknown as well
    head = max(0.0, float(g.t[0]) - t0)
    tail = max(0.0, t1 - (float(g.t[-1]) + step))
    possible = possible + np.where(j == n, tail, 0.0) + np.where(idx == 0, head, 0.0)
    # a stay hidden entirely inside an unknown stretch: its length minus the time needed to travel
    hidden = _hidden_stay_bound(g, step, params)
    i = int(np.argmax(certain))
    best_possible = float(max(possible.max(initial=0.0), hidden, head, tail))
    start = float(g.t[i])
    end = float(g.t[min(first_break[i], n - 1)])
    return Dwell(float(certain[i]), best_possible, start, end,
                 float(g.lat[i]) if g.known[i] else None, float(g.lon[i]) if g.known[i] else None, unobserved)


_UPPER = np.triu(np.ones((720, 720), dtype=bool), 1)  # an hour of samples; made once, not per gap
_UPPER.flags.writeable = False


def _upper(n: int) -> npt.NDArray[np.bool_]:
    """The strict upper triangle of an n x n matrix (True where column > row), read-only."""
    return _UPPER[:n, :n] if n <= _UPPER.shape[0] else np.triu(np.ones((n, n), dtype=bool), 1)


def _hidden_stay_bound(g: Grid, step: float, params: Params) -> float:
    unknown = ~g.known
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


def distance_series(grid: Grid, lat: float, lon: float) -> F64:
    return haversine_m(grid.lat, grid.lon, lat, lon)
