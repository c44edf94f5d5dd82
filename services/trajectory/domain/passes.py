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
* If a pass reaches within ``time_check_min_s`` of the reported time, the reported time fits the
  track: no time check.
* Otherwise each pass is weighed as an explanation of the report: how likely the reported place is
  given where he passed (a place on a map is good to ``time_check_place_sigma_m`` or so: Gaussian)
  times how likely a report is to be that far off in time (``time_check_offset_scale_s``:
  exponential, so a pass minutes away beats one hours away, and a pass clearly nearer the place
  beats one that is only a few minutes nearer the reported time). In logarithms, the pass with the
  smallest ``(d / sigma)^2 / 2 + |offset| / scale`` is the one meant.

Pure functions over arrays of positions in metres east and north of the place.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import F64, Params

VISIT_GAP_S = 120.0  # in-radius stretches closer in time than this are one pass


@dataclass(frozen=True)
class Pass:
    """One pass by the place: within the radius from ``start`` to ``end``; nearest at ``t``, ``d``
    metres away. ``ts``/``ds``: its near moments (fixes, and closest approaches between fixes)."""

    start: float
    end: float
    t: float
    d: float
    ts: F64
    ds: F64

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


def fitting(ps: list[Pass], at: float, params: Params) -> Pass | None:
    """The pass within ``time_check_min_s`` of the reported time (the nearest of several), if any:
    then the reported time fits the track."""
    fit = [p for p in ps if p.offset(at) <= params.time_check_min_s]
    return min(fit, key=lambda p: p.d, default=None)


def misfit(p: Pass, at: float, params: Params) -> float:
    """How badly a pass explains a report at ``at``: minus the log-likelihood (up to a constant) of
    the reported place given the pass, and of the report being off by the pass's offset."""
    z = p.d / params.time_check_place_sigma_m
    return 0.5 * z * z + abs(p.t - at) / params.time_check_offset_scale_s


def best(ps: list[Pass], at: float, params: Params) -> Pass | None:
    """The pass that best explains a report at ``at`` (see the module's notes)."""
    return min(ps, key=lambda p: misfit(p, at, params), default=None)
