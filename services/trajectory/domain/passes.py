"""When the rider was at a place: his passes by it, and the one that best explains a report.

The time check (DATA_CONTRACT §6) asks when the rider was at the reported place, because reported
times are often minutes off (riders report hours later, from memory). A rider may pass the same
place several times a day (to a customer and back, past a merchant twice), so "when he was
nearest" is read as "the pass that best explains the report":

* A *pass* is a stretch of time when his track -- straight between fixes at most
  ``observation_gap_s`` apart, never across a longer outage (nobody saw where he went then) -- was
  within ``time_check_radius_m`` of the place; stretches less than ``VISIT_GAP_S`` apart are one
  pass (he stood at the door and the fixes wandered in and out). Its distance is the closest
  approach, which does not depend on how often the phone sampled.
* An *unseen pass* is an outage (fixes A and B more than ``observation_gap_s`` apart) with the
  place on his way: riding from A by the place to B is at most ``time_check_detour_m`` longer than
  riding straight (streets are not straight), and he could have ridden it at
  ``plausible_speed_mps``. He may have been at the place from ``start`` (A's time plus |AP| at that
  speed) to ``end`` (B's time less |PB| at it); riding steadily he was there at ``t``, |AP| / (|AP|
  + |PB|) of the way through the outage.
* If a pass reaches within ``time_check_min_s`` of the reported time, or an unseen pass could have
  had him at the place at the reported time itself (or riding steadily within ``time_check_min_s``
  of it), the reported time fits: no time check.
* Otherwise each pass is weighed as an explanation of the report: how likely the reported place is
  given where he passed (a place on a map is good to ``time_check_place_sigma_m`` or so: Gaussian)
  times how likely a report is to be that far off in time (``time_check_offset_scale_s``:
  exponential, so a pass minutes away beats one hours away, and a pass clearly nearer the place
  beats one that is only a few minutes nearer the reported time). In logarithms, the pass with the
  smallest ``(d / sigma)^2 / 2 + |offset| / scale`` at its best moment is the one meant. An unseen
  pass is weaker evidence than a fix by the place: it counts as if he had passed
  ``time_check_unseen_m`` from the place, at its steady-riding time; so a real pass about as far
  from the reported time still wins.
* Two passes may explain a report about equally well (as near the place, 5 and 9 minutes from the
  reported time): nothing observable tells them apart. The next best pass, if less than
  ``time_check_rival_ratio`` times less likely, is named too when he was doing something else then.

Pure functions over arrays of positions in metres east and north of the place (``choose`` takes the
day's fixes in degrees and projects only those it looks at).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.geo import local_xy_m

from .model import F64, Params

VISIT_GAP_S = 120.0  # in-radius stretches closer in time than this are one pass


@dataclass(frozen=True)
class Pass:
    """One pass by the place: within the radius from ``start`` to ``end``; nearest at ``t``, ``d``
    metres away. ``ts``/``ds``: its near moments (fixes, and closest approaches between fixes).

    An unseen pass (``gap``): no fix from ``gap[0]`` to ``gap[1]``; he may have been at the place
    from ``start`` to ``end``, riding steadily at ``t``; ``d`` is how much longer riding by the
    place is than riding straight between the two fixes (the detour)."""

    start: float
    end: float
    t: float
    d: float
    ts: F64
    ds: F64
    gap: tuple[float, float] | None = None

    @property
    def unseen(self) -> bool:
        """No fix saw him at the place: a pass hidden in an outage."""
        return self.gap is not None

    def offset(self, at: float) -> float:
        """How far the pass lies from an instant, in seconds: 0 when it spans it."""
        return 0.0 if self.start <= at <= self.end else min(abs(at - self.start), abs(at - self.end))


def passes(t: F64, x: F64, y: F64, radius: float, max_gap_s: float) -> list[Pass]:
    """The passes within ``radius`` of (0, 0) of the track ``t``, ``x``, ``y`` (sorted by time; the
    track straight between fixes at most ``max_gap_s`` apart)."""
    d = np.hypot(x, y)
    inside = d <= radius
    starts, ends, near_t, near_d = [t[inside]], [t[inside]], [t[inside]], [d[inside]]
    if t.size > 1:
        dt, dx, dy = np.diff(t), np.diff(x), np.diff(y)
        seg2 = dx * dx + dy * dy
        moving = seg2 > 0.0
        safe = np.where(moving, seg2, 1.0)
        b = x[:-1] * dx + y[:-1] * dy
        u = np.where(moving, np.clip(-b / safe, 0.0, 1.0), 0.0)  # closest approach on the segment
        cd = np.hypot(x[:-1] + u * dx, y[:-1] + u * dy)
        ok = (dt > 0.0) & (dt <= max_gap_s) & (cd <= radius)
        # where on the segment it is within the radius: |p0 + s v|^2 <= r^2
        root = np.sqrt(np.maximum(b * b - seg2 * (x[:-1] ** 2 + y[:-1] ** 2 - radius * radius), 0.0))
        s0 = np.where(moving, np.clip((-b - root) / safe, 0.0, 1.0), 0.0)
        s1 = np.where(moving, np.clip((-b + root) / safe, 0.0, 1.0), 1.0)
        t0 = t[:-1]
        starts.append((t0 + s0 * dt)[ok])
        ends.append((t0 + s1 * dt)[ok])
        near_t.append((t0 + u * dt)[ok])
        near_d.append(cd[ok])
    a, e, nt, nd = (np.concatenate(v) for v in (starts, ends, near_t, near_d))
    if a.size == 0:
        return []
    order = np.argsort(a, kind="stable")
    a, e, nt, nd = a[order], e[order], nt[order], nd[order]
    reach = np.maximum.accumulate(e)
    cut = np.flatnonzero(a[1:] - reach[:-1] > VISIT_GAP_S) + 1
    out = []
    for lo, hi in zip(np.concatenate([[0], cut]), np.concatenate([cut, [a.size]]), strict=True):
        k = lo + int(np.argmin(nd[lo:hi]))
        out.append(Pass(float(a[lo]), float(reach[hi - 1]), float(nt[k]), float(nd[k]), nt[lo:hi], nd[lo:hi]))
    return out


def unseen_passes(t: F64, x: F64, y: F64, min_gap_s: float, speed: float, detour_m: float) -> list[Pass]:
    """The outages of the track (fixes more than ``min_gap_s`` apart) with (0, 0) on his way
    between the two fixes: riding by it at most ``detour_m`` longer than straight, and possible at
    ``speed`` (see the module's notes)."""
    if t.size < 2:
        return []
    dt = np.diff(t)
    r = np.hypot(x, y)
    a, b = r[:-1], r[1:]  # |AP|, |PB|
    detour = a + b - np.hypot(np.diff(x), np.diff(y))
    out = []
    for i in np.flatnonzero((dt > min_gap_s) & (a + b <= speed * dt) & (detour <= detour_m)):
        t0, t1 = float(t[i]), float(t[i + 1])
        steady = t0 + (t1 - t0) * float(a[i] / (a[i] + b[i])) if a[i] + b[i] > 0.0 else (t0 + t1) / 2.0
        out.append(Pass(t0 + float(a[i]) / speed, t1 - float(b[i]) / speed, steady, float(detour[i]),
                        np.array([steady]), np.array([detour[i]]), gap=(t0, t1)))
    return out


def line_distance(p: Pass, t: F64, x: F64, y: F64) -> float:
    """Of an unseen pass: how near to (0, 0) the straight line between its two fixes comes (what
    the track, drawn straight across the outage as it is between close fixes, says)."""
    assert p.gap is not None
    i = min(int(np.searchsorted(t, p.gap[0], side="left")), t.size - 2)
    dx, dy = float(x[i + 1] - x[i]), float(y[i + 1] - y[i])
    seg2 = dx * dx + dy * dy
    u = min(1.0, max(0.0, -(float(x[i]) * dx + float(y[i]) * dy) / seg2)) if seg2 > 0.0 else 0.0
    return float(np.hypot(float(x[i]) + u * dx, float(y[i]) + u * dy))


def fitting(ps: list[Pass], at: float, params: Params) -> Pass | None:
    """The pass within ``time_check_min_s`` of the reported time (the nearest of several; a real
    pass before an unseen one), if any: then the reported time fits the track."""

    def fits(p: Pass) -> bool:
        if p.unseen:
            return p.start <= at <= p.end or abs(p.t - at) <= params.time_check_min_s
        return p.offset(at) <= params.time_check_min_s

    return min(filter(fits, ps), key=lambda p: (p.unseen, p.d), default=None)


def misfit(p: Pass, at: float, params: Params) -> float:
    """How badly a pass explains a report at ``at``: minus the log-likelihood (up to a constant) of
    the reported place given the pass, and of the report being off by the pass's offset, at the
    pass's best moment (an unseen pass: as if ``time_check_unseen_m`` away at its steady time)."""
    d = np.full(1, params.time_check_unseen_m) if p.unseen else p.ds
    z = d / params.time_check_place_sigma_m
    return float(np.min(0.5 * z * z + np.abs(p.ts - at) / params.time_check_offset_scale_s))


def best(ps: list[Pass], at: float, params: Params) -> Pass | None:
    """The pass that best explains a report at ``at`` (see the module's notes)."""
    return min(ps, key=lambda p: misfit(p, at, params), default=None)


def rival(ps: list[Pass], chosen: Pass, at: float, params: Params) -> Pass | None:
    """The next best pass, if it explains the report almost as well as ``chosen``: less than
    ``time_check_rival_ratio`` times less likely (two passes as near the place, 5 and 9 minutes
    from the reported time, are; nothing observable tells them apart)."""
    rest = [p for p in ps if p is not chosen]
    if not rest:
        return None
    other = min(rest, key=lambda p: misfit(p, at, params))
    close = misfit(other, at, params) - misfit(chosen, at, params) <= float(np.log(params.time_check_rival_ratio))
    return other if close else None


# ---------------------------------------------------------------- the same answer from a window

WINDOWS_S = (1800.0, 7200.0)  # half-widths tried around the reported time, then the day


@dataclass(frozen=True)
class Choice:
    """The time check's passes and the ones it names, with the fixes they were found on (in metres
    from the place): ``fit`` (the reported time fits), else ``chosen`` (the best explanation) and
    ``other`` (its rival, if any)."""

    t: F64
    x: F64
    y: F64
    passes: list[Pass]
    fit: Pass | None
    chosen: Pass | None
    other: Pass | None


def choose(t: F64, lat: F64, lon: F64, place: tuple[float, float], at: float, params: Params,
           windows: tuple[float, ...] = WINDOWS_S) -> Choice:
    """``fitting``, ``best`` and ``rival`` over the passes of the whole track (``t`` sorted,
    strictly increasing), found -- when they can be -- on a window of it around ``at``.

    Most reports name a time near the pass meant, and a rider's day holds thousands of fixes: the
    passes are sought first among the fixes within ``w`` of ``at`` (from the last fix at or before
    ``at - w`` to the first at or after ``at + w``), and the answer is taken when it is provably the
    whole track's, else the next window is tried, and at last the whole track. Why the window's
    answer is then the whole track's, every float the same:

    * Every quantity of a fix or of the segment between two fixes (distance, closest approach,
      where it enters and leaves the radius, the detour of an outage) is an element-wise function
      of that fix or segment, so it is the same float whether computed over the window or the day.
    * The window's in-radius stretches (``passes``) all lie more than ``VISIT_GAP_S`` (+1 s) inside
      its first and last fix, where there are fixes beyond them (checked). Every stretch of the
      day outside the window ends at or before its first fix (starts at or after its last), up to
      rounding: so they are cut off from the window's by more than ``VISIT_GAP_S``, the window's
      stretches sort (stably) in the same order as in the day's, and group into the same passes
      with the same floats. Its outages with the place on the way are the day's, segment by
      segment. The window's passes are thus exactly the day's within it, in the same order.
    * Every other pass of the day lies wholly (start, end and every moment) at least ``w`` (less
      rounding) from ``at``: it cannot fit (``w`` - 1 s > ``time_check_min_s``), and its misfit
      exceeds L = (``w`` - 1 s) / ``time_check_offset_scale_s`` (misfit is at least the time term).
    * So: a window pass that fits is the day's ``fit`` (min over the same fitting passes in the same
      order). Without one, a window pass with misfit below L is the day's ``best`` (the others are
      strictly worse, so ties break the same way); the next best is the day's ``rival`` candidate if
      its misfit is below L too, and when there is none such, every other pass's misfit is at
      least L, so none is a rival if L - misfit(chosen) > log(``time_check_rival_ratio``).
    * What is read off the chosen passes (``line_distance``, ``np.interp`` of the track at moments
      of a pass) only looks at the fixes around those moments, which lie inside the window (at
      least ``VISIT_GAP_S`` from its ends where it is cut): the same floats.

    Otherwise (no pass in the window, or one near its edge, or a best that is not clearly the best
    of the day) the next window decides, or the whole track as before. ``windows=()``: the whole
    track only."""
    n = int(t.size)
    log_ratio = float(np.log(params.time_check_rival_ratio))
    for w in (*windows, None):
        i0, i1 = 0, n
        if w is not None:
            i0 = max(0, int(np.searchsorted(t, at - w, side="right")) - 1)  # t[i0] <= at - w, or i0 = 0
            i1 = min(n, int(np.searchsorted(t, at + w, side="left")) + 1)  # t[i1 - 1] >= at + w, or i1 = n
        tw = t[i0:i1]
        x, y = local_xy_m(lat[i0:i1], lon[i0:i1], place[0], place[1])
        ps = passes(tw, x, y, params.time_check_radius_m, params.observation_gap_s)
        ps += unseen_passes(tw, x, y, params.observation_gap_s, params.plausible_speed_mps,
                            params.time_check_detour_m)
        fit = fitting(ps, at, params)
        chosen = None if fit is not None else best(ps, at, params)
        other = rival(ps, chosen, at, params) if chosen is not None else None
        choice = Choice(tw, x, y, ps, fit, chosen, other)
        if w is None or (i0 == 0 and i1 == n):
            return choice
        if _decided(choice, i0 > 0, i1 < n, at, w, params, log_ratio):
            return choice
    raise AssertionError("unreachable: the whole track always decides")


def _decided(c: Choice, before: bool, after: bool, at: float, w: float, params: Params, log_ratio: float) -> bool:
    """Whether a window's choice is the whole track's (see ``choose``)."""
    margin = VISIT_GAP_S + 1.0
    lo, hi = float(c.t[0]), float(c.t[-1])
    for p in c.passes:
        if not p.unseen and ((before and p.start <= lo + margin) or (after and p.end >= hi - margin)):
            return False  # may be part of a pass reaching beyond the window
    if w - 1.0 <= params.time_check_min_s:
        return False
    if c.fit is not None:
        return True
    if c.chosen is None:
        return False  # the day's passes (or nearest fix) may lie outside the window
    bound = (w - 1.0) / params.time_check_offset_scale_s
    m = misfit(c.chosen, at, params)
    if not m < bound:
        return False
    rest = [p for p in c.passes if p is not c.chosen]
    if rest and min(misfit(p, at, params) for p in rest) < bound:
        return True  # the next best is the window's: the rival is decided as over the day
    return bound - m > log_ratio  # no pass outside the window can be a rival
