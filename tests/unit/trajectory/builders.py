"""Tiny builders for rider-days: positions in metres east/north of a point in Heyuan, times in
seconds after 10:00 local on 2026-05-14."""

from __future__ import annotations

import numpy as np

from services.trajectory.domain.model import Order, Params, PresenceEvent, RiderDay, Track

BASE_LAT, BASE_LON = 23.74, 114.70
T0 = 1778724000.0  # 2026-05-14T10:00:00+08:00
_M_PER_DEG = 111_195.0


def pos(x: float, y: float) -> tuple[float, float]:
    return (BASE_LAT + y / _M_PER_DEG, BASE_LON + x / (_M_PER_DEG * np.cos(np.radians(BASE_LAT))))


def track(points: list[tuple[float, tuple[float, float]]], accuracy: float = 5.0) -> Track:
    """``track([(0, (0, 0)), (60, (300, 0))])``: fixes at seconds after T0, metres from BASE."""
    t = np.array([T0 + p[0] for p in points], dtype=float)
    ll = np.array([pos(*p[1]) for p in points], dtype=float).reshape(-1, 2)
    return Track(t, ll[:, 0], ll[:, 1], np.full(len(points), accuracy))


def ride(t0: float, t1: float, a: tuple[float, float], b: tuple[float, float], every: float = 5.0):
    ts = np.arange(t0, t1, every)
    f = (ts - t0) / max(t1 - t0, 1e-9)
    return [(float(t), (a[0] + (b[0] - a[0]) * k, a[1] + (b[1] - a[1]) * k)) for t, k in zip(ts, f, strict=True)]


def stay(t0: float, t1: float, at: tuple[float, float], every: float = 15.0, jitter: float = 3.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    ts = np.arange(t0, t1, every)
    return [(float(t), (at[0] + rng.normal(0, jitter), at[1] + rng.normal(0, jitter))) for t in ts]


def order(oid: str, accepted: float, picked: float | None = None, ended: float | None = None, *,
          merchant: tuple[float, float] = (0, 0), customer: tuple[float, float] = (1000, 0),
          arrived: float | None = None, platform: str = "meituan", cancelled: bool = False) -> Order:
    return Order(oid, platform, T0 + accepted, None if arrived is None else T0 + arrived,
                 None if picked is None else T0 + picked, None if ended is None else T0 + ended,
                 None if ended is None else ("cancelled" if cancelled else "delivered"), pos(*merchant), pos(*customer))


def online(t0: float, t1: float | None = None, platform: str = "meituan") -> list[PresenceEvent]:
    evs = [PresenceEvent(T0 + t0, platform, True)]
    if t1 is not None:
        evs.append(PresenceEvent(T0 + t1, platform, False))
    return evs


def day(orders: list[Order], presence: list[PresenceEvent], points: list[tuple[float, tuple[float, float]]],
        rider: str = "R1") -> RiderDay:
    return RiderDay(rider, tuple(orders), tuple(presence), track(points) if points else Track.empty())


PARAMS = Params()
