"""GPS cleaning: sort, de-duplicate, drop poor fixes and teleports. Never modifies its input.

Outliers are judged against their neighbours (a spike away from a consistent neighbourhood), not
against the last kept fix: a filter that compares each fix with the last one it kept rejects every
good fix after one real jump across an observation gap; this one does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shared.geo import haversine_m, local_xy_m

from .model import Params, Track
from .motion import beyond

_HALF_WINDOW = 3  # neighbours each side for the spike test


@dataclass(frozen=True)
class CleanReport:
    raw: int
    duplicates: int
    inaccurate: int
    outliers: int
    used: int
    observation_gaps: tuple[tuple[float, float], ...]  # (start, end) with no fix, longer than the limit

    @property
    def unobserved_s(self) -> float:
        return float(sum(b - a for a, b in self.observation_gaps))


def clean(track: Track, params: Params) -> tuple[Track, CleanReport]:
    n = len(track)
    if n == 0:
        return track, CleanReport(0, 0, 0, 0, 0, ())
    # Sort by time; ties by accuracy then position, so any permutation of the input gives one answer.
    if np.all(np.diff(track.t) > 0):  # the usual case: already in order, no ties to break
        t, lat, lon, acc = track.t, track.lat, track.lon, track.accuracy
    else:
        order = _order(track)
        t, lat, lon, acc = track.t[order], track.lat[order], track.lon[order], track.accuracy[order]

    # Duplicates: the same instant (keep the most accurate, which sorts first), or a repeat of the
    # previous fix within a second and a couple of metres.
    same_t = np.zeros(n, dtype=bool)
    same_t[1:] = t[1:] == t[:-1]
    near = np.zeros(n, dtype=bool)
    close = np.flatnonzero(np.diff(t) < params.duplicate_window_s)
    near[close + 1] = haversine_m(lat[close], lon[close], lat[close + 1], lon[close + 1]) < params.duplicate_radius_m
    dup = same_t | near
    keep = ~dup
    inaccurate = keep & (acc > params.max_accuracy_m)
    keep &= ~inaccurate
    t, lat, lon, acc = t[keep], lat[keep], lon[keep], acc[keep]

    outlier = _spikes(t, lat, lon, params)
    good = ~outlier
    out = Track(t[good], lat[good], lon[good], acc[good])
    gaps = observation_gaps(out.t, params.observation_gap_s)
    report = CleanReport(
        raw=n,
        duplicates=int(dup.sum()),
        inaccurate=int(inaccurate.sum()),
        outliers=int(outlier.sum()),
        used=len(out),
        observation_gaps=gaps,
    )
    return out, report


def _order(track: Track) -> npt.NDArray[np.intp]:
    """The order by time, ties by accuracy (unknown last), then latitude, then longitude. Sorted by
    time alone first (a stable sort, quick on a feed nearly in order), then only the runs of fixes
    at one instant are sorted by the other keys."""
    acc_key = np.where(np.isnan(track.accuracy), np.inf, track.accuracy)
    order = np.argsort(track.t, kind="stable")
    step = np.diff(track.t[order])
    tie = np.zeros(len(track), dtype=bool)
    tie[1:] = step == 0
    tie[:-1] |= step == 0
    at = np.flatnonzero(tie)  # positions of the tied fixes: whole runs of one instant each
    if at.size:
        sub = order[at]
        order[at] = sub[np.lexsort((track.lon[sub], track.lat[sub], acc_key[sub], track.t[sub]))]
    return order


def _spikes(t: npt.NDArray[np.float64], lat: npt.NDArray[np.float64], lon: npt.NDArray[np.float64],
            params: Params) -> npt.NDArray[np.bool_]:
    """Fixes far from the median of their neighbours when those neighbours agree with each other,
    or reachable only faster than any rider rides. Two passes catch bursts of two."""
    n = t.shape[0]
    bad = np.zeros(n, dtype=bool)
    if n < 3:
        return bad
    x_all, y_all = local_xy_m(lat, lon, float(lat[0]), float(lon[0]))
    for _ in range(2):
        idx = np.flatnonzero(~bad)
        if idx.size < 3:
            break
        tt, x, y = t[idx], x_all[idx], y_all[idx]
        m = idx.size
        dx, dy = np.diff(x), np.diff(y)  # leg k - 1 -> k is hypot(dx[k - 1], dy[k - 1])
        # only a fix with a long leg on either side (or next to one) can be a spike; whether a leg
        # is longer than 100 m is decided without hypot where the sum of squares is clear (beyond)
        longer = np.concatenate([[False], beyond(dx, dy, 100.0)[0], [True]])  # [k]: leg into k; [m]: none out
        long_leg = longer[:-1] | longer[1:]
        cand = np.flatnonzero(long_leg | np.roll(long_leg, 1) | np.roll(long_leg, -1))
        if cand.size == 0:
            break
        k = min(_HALF_WINDOW, m - 1)
        offsets = np.delete(np.arange(-k, k + 1), k)
        neigh = cand[:, None] + offsets[None, :]
        safe = np.clip(neigh, 0, m - 1)
        # only neighbours that exist and are close in time speak for a fix
        valid = (neigh >= 0) & (neigh < m) & (np.abs(tt[safe] - tt[cand, None]) <= 600.0)
        nx = np.where(valid, x[safe], np.nan)
        ny = np.where(valid, y[safe], np.nan)
        enough = valid.sum(axis=1) >= 2
        mx, my = _nanmedian_rows(nx), _nanmedian_rows(ny)
        d_self = np.hypot(x[cand] - mx, y[cand] - my)
        spread = _nanmedian_rows(np.hypot(nx - mx[:, None], ny - my[:, None]))
        spike = enough & (d_self > np.maximum(150.0, 4.0 * spread))
        new = _fast(cand, tt, dx, dy, params) | spike
        if not new.any():
            break
        bad[idx[cand[new]]] = True
    return bad


def _fast(c: npt.NDArray[np.intp], tt: npt.NDArray[np.float64], dx: npt.NDArray[np.float64],
          dy: npt.NDArray[np.float64], params: Params) -> npt.NDArray[np.bool_]:
    """Of the fixes ``c`` (of m, at ``tt``, legs ``dx``/``dy``): reachable only faster than any
    rider rides, on both legs (the first and last fix: on their one leg), both legs over 100 m.
    The legs' lengths and speeds, element by element, of these fixes only -- as the whole track's:

    step[k] = hypot(dx[k - 1], dy[k - 1]) (0 for k = 0); dt[k] = max(tt[k] - tt[k - 1], 0.5) (inf
    for k = 0); v_in = step / dt; v_out[k] = v_in[k + 1] (0 for the last); then v_in[0] = v_out[0]
    and v_out[m - 1] = v_in[m - 1]; d_out[k] = step[k + 1] (inf for the last); fast: min(v_in,
    v_out) above the limit and min(step, d_out) above 100 m."""
    last = tt.shape[0] - 1

    def step(k: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        j = np.maximum(k, 1) - 1
        out: npt.NDArray[np.float64] = np.where(k == 0, 0.0, np.hypot(dx[j], dy[j]))
        return out

    def v_in(k: npt.NDArray[np.intp], s: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        j = np.maximum(k, 1)
        out: npt.NDArray[np.float64] = s / np.where(k == 0, np.inf, np.maximum(tt[j] - tt[j - 1], 0.5))
        return out

    c1 = np.minimum(c + 1, last)
    s_c, s_c1 = step(c), step(c1)
    vi, vi1 = v_in(c, s_c), v_in(c1, s_c1)
    vo = np.where(c < last, vi1, 0.0)
    vi = np.where(c == 0, vo, vi)
    vo = np.where(c == last, vi, vo)
    d_out = np.where(c < last, s_c1, np.inf)
    fast: npt.NDArray[np.bool_] = (np.minimum(vi, vo) > params.max_speed_mps) & (np.minimum(s_c, d_out) > 100.0)
    return fast


def _nanmedian_rows(a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Median of each row ignoring NaN (NaN for an all-NaN row); np.nanmedian is slow on many short rows."""
    s = np.sort(a, axis=1)  # NaN sorts last
    cnt = np.sum(~np.isnan(a), axis=1)
    lo = np.clip((cnt - 1) // 2, 0, a.shape[1] - 1)
    hi = np.clip(cnt // 2, 0, a.shape[1] - 1)
    rows = np.arange(a.shape[0])
    med = (s[rows, lo] + s[rows, hi]) / 2.0
    out: npt.NDArray[np.float64] = np.where(cnt > 0, med, np.nan)
    return out


def observation_gaps(t: npt.NDArray[np.float64], limit_s: float) -> tuple[tuple[float, float], ...]:
    if t.shape[0] < 2:
        return ()
    dt = np.diff(t)
    i = np.flatnonzero(dt > limit_s)
    return tuple((float(t[k]), float(t[k + 1])) for k in i)
