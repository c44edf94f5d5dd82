"""DATA_CONTRACT §5 rule 6: what the incident caused afterwards never decides it.

A rider who falls stops: he sits at the roadside, waits for help, goes to a clinic, switches the
app off. The first stay that begins within ``aftermath_start_s`` after the reported time, within
``aftermath_radius_m`` of the incident's place, is the incident's *aftermath*. It is no dwell
under rule 4, and going offline after it began does not break "online throughout": the gap is
judged on what happened up to the aftermath, plus when the next order came.

Only the incident being assessed has an aftermath; every other instant follows rules 1 to 5, so
this never touches the timeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shared.geo import EARTH_RADIUS_M, haversine_m, local_xy_m

from .model import LatLon, Params, Phase
from .motion import Dwell, Grid, longest_dwell
from .phases import Gap, covers

INF = float("inf")


@dataclass(frozen=True)
class Aftermath:
    """A stay that began just after the incident, at its place."""

    start: float
    end: float  # when the rider left the place, the next order was accepted, or the last fix there
    lat: float
    lon: float
    distance_m: float  # from the incident's place to where the stay began
    beyond: bool = False  # it went on after the end of the evidence window it is shown in

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Judgement:
    """The phase of the incident under rule 6, with what a mediator weighs."""

    phase: Phase
    why: str  # aftermath_connected | aftermath_no_next | dwelt | unobserved | gap_too_long | went_offline
    dwell: Dwell | None  # the longest stay in the gap before the aftermath
    offline_at: float | None  # the rider went offline on every platform then, after the incident


def find_aftermath(grid: Grid, t: float, place: LatLon, params: Params, until: float = INF) -> Aftermath | None:
    """The first stay (within ``dwell_radius_m`` of where it began, at least ``aftermath_min_s``
    long) that begins in [t - lead, t + aftermath_start_s] within ``aftermath_radius_m`` of
    ``place``; it ends at ``until`` at the latest (the next order). None if there is none."""
    if len(grid) < 2:
        return None
    step = float(grid.t[1] - grid.t[0])
    lo, hi = np.searchsorted(grid.t, [t - params.aftermath_lead_s, t + params.aftermath_start_s], side="left")
    hi = min(int(hi) + 1, len(grid))
    if lo >= hi:
        return None
    with np.errstate(invalid="ignore"):
        near = grid.known[lo:hi] & (haversine_m(grid.lat[lo:hi], grid.lon[lo:hi], place[0], place[1])
                                    <= params.aftermath_radius_m)
    skip_until = -INF
    cand = lo + np.flatnonzero(near)
    # most candidates are fixes of a ride past the place: their stays end within the first window
    # of _stay_end, worked out for all of them at once
    quick, quick_end = _window_ends(grid, cand, grid.lat[cand], grid.lon[cand], params, until, step)
    for k, i in enumerate(cand.tolist()):
        t_i = float(grid.t[i])
        if t_i > t + params.aftermath_start_s or t_i >= until:
            break
        if t_i < skip_until:
            continue
        centre = (float(grid.lat[i]), float(grid.lon[i]))
        end = float(quick_end[k]) if quick[k] else _stay_end(grid, i, centre, params, until, step)
        if end - t_i < params.aftermath_min_s:
            continue
        # where he sat is the middle of the stay's first minutes (the first fix there may be one
        # taken while still rolling in): the stay lasts until he leaves that place
        g = grid.slice(t_i, t_i + params.aftermath_min_s)
        if g.known.any():
            centre = (float(np.nanmedian(g.lat[g.known])), float(np.nanmedian(g.lon[g.known])))
            end = max(end, _stay_end(grid, i, centre, params, until, step))
        began = _stay_start(grid, i, centre, params)
        if began < t - params.aftermath_lead_s:
            skip_until = end  # a stay already under way before the incident: not its aftermath
            continue
        return Aftermath(began, end, centre[0], centre[1],
                         round(float(haversine_m(centre[0], centre[1], place[0], place[1])), 1))
    return None


LEFT_S = 60.0  # the rider has left a place when every fix for this long is outside its radius


def _stay_end(grid: Grid, i: int, centre: LatLon, params: Params, until: float, step: float) -> float:
    """How long the rider stayed within the dwell radius of ``centre`` from sample i: until he is
    seen away from it for ``LEFT_S`` (one noisy fix does not end a stay; a silence in between counts
    only if he is seen there again after it).

    Most stays end within the hour, and ``until`` is often the end of the day: the samples are
    looked at in windows growing fourfold (ten minutes, forty, ...), each with ``LEFT_S`` of look-ahead,
    so a short stay does not cost the rest of the day. The answer is the one a single pass over
    everything up to ``until`` gives."""
    if grid.t[i] >= until:
        return float(grid.t[i])
    one, lat0, lon0 = np.array([i]), np.array([centre[0]]), np.array([centre[1]])
    window = _STAY_WINDOW
    while True:
        decided, end = _window_ends(grid, one, lat0, lon0, params, until, step, window)
        if decided[0]:
            return float(end[0])
        window *= 4


_STAY_WINDOW = 120  # samples: ten minutes on the 5 s grid


def _window_ends(grid: Grid, cand: npt.NDArray[np.intp], lat0: npt.NDArray[np.float64], lon0: npt.NDArray[np.float64],
                 params: Params, until: float, step: float,
                 window: int = _STAY_WINDOW) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float64]]:
    """``_stay_end`` from each sample i in ``cand`` (centre ``lat0``, ``lon0``, a row each), as far
    as the first ``window`` samples (and ``LEFT_S`` of look-ahead) decide it: whether they do, and
    the answer where they do. Each distance is computed as ``local_xy_m`` computes it (the
    projection's scale taken per centre, as a scalar), so every row is the same floats as alone."""
    n, m = len(grid), int(cand.shape[0])
    j_max = int(np.searchsorted(grid.t, until, side="left")) if math.isfinite(until) else n
    w = max(1, int(round(LEFT_S / step)))
    size = j_max - cand
    if m == 0 or int(size.max()) <= 0:
        return np.zeros(m, dtype=bool), np.zeros(m)
    width = min(window + w, int(size.max()))
    part = np.minimum(size, window + w)  # decides every k < window (or every k, when it is all there is)
    offs = np.arange(width)
    valid = offs[None, :] < part[:, None]
    idx = np.minimum(cand[:, None] + offs[None, :], n - 1)
    known = grid.known[idx] & valid
    k = np.pi / 180.0 * EARTH_RADIUS_M
    scale = np.array([np.cos(np.radians(float(a))) for a in lat0.tolist()])
    x = (grid.lon[idx] - lon0[:, None]) * k * scale[:, None]
    y = (grid.lat[idx] - lat0[:, None]) * k
    with np.errstate(invalid="ignore"):
        near = known & ~(x * x + y * y > params.dwell_radius_m**2)
    # away at k: seen, and no known sample within the radius in [k, k + LEFT_S) (a known sample is
    # itself something known ahead)
    away = known & _none_ahead(near, w)
    away &= offs[None, :] < np.where(part == size, part, window)[:, None]
    has_hit = away.any(axis=1)
    stop = np.where(has_hit, np.argmax(away, axis=1), size)
    decided = (size > 0) & (has_hit | (part == size))
    # the last known sample before the stop (-1: none)
    last = np.maximum.accumulate(np.where(known, offs[None, :], -1), axis=1)
    before = np.where(stop > 0, last[np.arange(m), np.clip(stop - 1, 0, width - 1)], -1)
    seen_end = np.where(before >= 0, grid.t[np.minimum(cand + np.maximum(before, 0), n - 1)] + step,
                        grid.t[np.minimum(cand, n - 1)])
    end = np.where((stop == size) & (j_max < n), until, seen_end)  # still there when the next order came
    return decided, end


def _none_ahead(flags: npt.NDArray[np.bool_], w: int) -> npt.NDArray[np.bool_]:
    """For each row and k: none of flags[k : k + w] is set (the flags past a row's end are unset)."""
    m, n = flags.shape
    c = np.zeros((m, n + 1), dtype=np.int32)
    np.cumsum(flags, axis=1, dtype=np.int32, out=c[:, 1:])
    w = min(w, n)
    out = np.empty((m, n), dtype=bool)
    np.equal(c[:, w:], c[:, : n + 1 - w], out=out[:, : n + 1 - w])  # k + w <= n
    np.equal(c[:, n:], c[:, n + 1 - w : n], out=out[:, n + 1 - w :])  # the window runs past the end
    return out


def _stay_start(grid: Grid, i: int, centre: LatLon, params: Params) -> float:
    """When the stay holding sample i began: when the rider was first seen at ``centre`` after he
    was last seen away from it (every fix for ``LEFT_S`` outside its radius). A silence does not
    end the walk back: seen there before and after it, he stayed there through it; seen away
    before it and there after it, he arrived in it (its middle is taken)."""
    step = float(grid.t[1] - grid.t[0])
    back = max(0, i - int(3 * 3600 / step))  # a stay of hours is under way long before, whatever it is
    g_t, g_lat, g_lon, g_known = grid.t[back:i + 1], grid.lat[back:i + 1], grid.lon[back:i + 1], grid.known[back:i + 1]
    x, y = local_xy_m(g_lat, g_lon, centre[0], centre[1])
    with np.errstate(invalid="ignore"):
        near = g_known & ~(x * x + y * y > params.dwell_radius_m**2)
    w = max(1, int(round(LEFT_S / step)))
    kernel = np.ones(w, dtype=np.int32)
    near_behind = np.convolve(near.astype(np.int32), kernel, mode="full")[: near.size]
    known_behind = np.convolve(g_known.astype(np.int32), kernel, mode="full")[: near.size]
    away = g_known & (near_behind == 0) & (known_behind > 0)  # seen only away for the last LEFT_S
    k = np.flatnonzero(away)
    if k.size == 0:
        return float(g_t[0]) - step  # under way since before the look-back
    seen = np.flatnonzero(near[int(k[-1]) + 1:])
    if not seen.size:
        return float(g_t[-1])
    first = int(k[-1]) + 1 + int(seen[0])
    dark = np.flatnonzero(~g_known[int(k[-1]) + 1:first])
    if dark.size:  # he arrived unseen, some time in the silence: its middle is the best guess
        return (float(g_t[int(k[-1]) + 1 + int(dark[0])]) + float(g_t[first])) / 2.0
    return float(g_t[first])


def offline_after(online: tuple[tuple[float, float], ...] | list[tuple[float, float]], t: float) -> float | None:
    """When the online stretch holding t ended (the rider went offline on every platform)."""
    for s, e in online:
        if s <= t < e:
            return e if math.isfinite(e) else None
    return None


def judge(gap: Gap, aftermath: Aftermath, t: float, online: tuple[tuple[float, float], ...],
          grid: Grid, params: Params) -> Judgement:
    """Rule 6 for an incident at t inside ``gap`` (whose previous order ended at ``gap.start``)."""
    t_a, t_b = gap.start, gap.end
    off = offline_after(online, t)
    before = max(aftermath.start, t_a)  # the part of the gap that counts ends where the aftermath began
    if t - t_a > params.max_connecting_gap_s:
        return Judgement(Phase.IDLE, "gap_too_long", None, off)
    if not covers(list(online), t_a, max(t, before)):
        return Judgement(Phase.IDLE, "went_offline", None, off)
    dwell = longest_dwell(grid, t_a, before, params)
    if dwell.certain_s >= params.dwell_min_s:
        return Judgement(Phase.IDLE, "dwelt", dwell, off)
    if dwell.possible_s >= params.dwell_min_s:
        return Judgement(Phase.INSUFFICIENT_DATA, "unobserved", dwell, off)
    if math.isfinite(t_b) and t_b - t_a <= params.max_connecting_gap_s:
        return Judgement(Phase.CONNECTING, "aftermath_connected", dwell, off)
    return Judgement(Phase.INSUFFICIENT_DATA, "aftermath_no_next", dwell, off)


def moved_m(grid: Grid, t0: float, t1: float) -> float | None:
    """Metres ridden between t0 and t1 along the known grid (None if nothing is known)."""
    g = grid.slice(t0, t1)
    if len(g) < 2 or not g.known.any():
        return None
    lat, lon = g.lat[g.known], g.lon[g.known]
    if lat.size < 2:
        return 0.0
    return float(np.sum(haversine_m(lat[:-1], lon[:-1], lat[1:], lon[1:])))
