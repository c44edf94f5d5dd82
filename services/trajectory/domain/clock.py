"""Phone clock against platform clock.

A rider stands at the merchant until the platform records ``picked_up`` and at the customer until
it records ``delivered``, then rides off. So each such event should coincide with the end of a stop
near the event's place, on the phone's clock. Every stop that ends near the right place within the
plausible skew proposes an offset; the offset proposed by the most events wins, and the median of
the proposals that agree with it is the estimate. gps_ts = platform_ts + skew.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shared.geo import haversine_m

from .model import Order, Params
from .motion import Stop

MATCH_RADIUS_M = 150.0  # geocodes are often tens of metres off the door
AGREE_S = 20.0


@dataclass(frozen=True)
class SkewEstimate:
    skew_s: float  # phone clock minus platform clock
    events_used: int  # events whose stop agrees with the estimate
    events_seen: int  # pickups and deliveries with a place
    spread_s: float  # median absolute deviation of the agreeing proposals

    @property
    def reliable(self) -> bool:
        return self.events_used >= 2 and self.events_used >= 0.3 * self.events_seen


def estimate_skew(stops: list[Stop], orders: tuple[Order, ...], params: Params) -> SkewEstimate:
    """Offset of the phone clock, from stops that end when the platform says the rider left."""
    events: list[tuple[float, tuple[float, float]]] = []
    for o in orders:
        if o.picked_up is not None and o.merchant is not None:
            events.append((o.picked_up, o.merchant))
        if o.end_kind == "delivered" and o.ended is not None and o.customer is not None:
            events.append((o.ended, o.customer))
    if not events or not stops:
        return SkewEstimate(0.0, 0, len(events), 0.0)
    s_end = np.array([s.end for s in stops])
    s_lat = np.array([s.lat for s in stops])
    s_lon = np.array([s.lon for s in stops])
    e_t = np.array([e[0] for e in events])
    e_lat = np.array([e[1][0] for e in events])
    e_lon = np.array([e[1][1] for e in events])
    near = haversine_m(e_lat[:, None], e_lon[:, None], s_lat[None, :], s_lon[None, :]) <= MATCH_RADIUS_M
    offset = s_end[None, :] - e_t[:, None]  # (events, stops)
    ok = near & (np.abs(offset) <= params.max_clock_skew_s)
    cand = offset[ok]
    if cand.size == 0:
        return SkewEstimate(0.0, 0, len(events), 0.0)
    # support of each candidate: number of events with some proposal within AGREE_S of it
    close = np.abs(offset[None, :, :] - cand[:, None, None]) <= AGREE_S  # (cand, events, stops)
    support = (close & ok[None, :, :]).any(axis=2).sum(axis=1)
    best = support.max()
    tied = cand[support == best]
    centre = tied[np.argmin(np.abs(tied - np.median(tied)))]
    # per event, its proposal nearest the centre
    dist = np.where(ok, np.abs(offset - centre), np.inf)
    j = np.argmin(dist, axis=1)
    agree = dist[np.arange(len(events)), j] <= AGREE_S
    props = offset[np.arange(len(events)), j][agree]
    skew = float(np.median(props))
    spread = float(np.median(np.abs(props - skew)))
    est = SkewEstimate(skew, int(agree.sum()), len(events), spread)
    return est if est.reliable else SkewEstimate(0.0, est.events_used, len(events), spread)
