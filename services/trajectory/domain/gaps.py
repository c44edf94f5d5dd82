"""Streaming gap detection: notice, event by event, when a gap between a rider's orders closes, and
classify it with the batch engine's own rules.

Pure: no faust, no Kafka, no store, no clock. The worker feeds :class:`GapTracker` the platform
events in each rider's order (``observe``) and the latest event time it has seen (``advance``); the
tracker says which gaps have closed. A gap opens when the rider's last active order is delivered or
cancelled, and closes when

- the next order is ``accepted`` (its end is known: the batch engine's gap ``[tA, tB]``);
- ``max_connecting_gap_s`` (30 min) of event time pass with no new order (idle, however it ends);
- the rider goes offline on every platform (idle, however it ends).

:func:`flag_for` then takes the gap from the timeline the batch engine builds over the rider's
stored feeds (``analyse(day).timeline.gaps``), or, when the order that closed it is the very last
thing stored (the engine then sees a zero-length order and an open-ended gap), asks the engine's
own ``classify_gap`` over that analysis: the classification is never re-implemented here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from services.trajectory.domain.assess import DayAnalysis
from services.trajectory.domain.model import Params, Phase
from services.trajectory.domain.phases import classify_gap

TIME_TOLERANCE_S = 1e-3  # a gap's start in the store equals the event's time, to the millisecond


class Cause(StrEnum):
    ACCEPTED = "accepted"  # the next order was accepted: the gap is [tA, tB]
    TIMEOUT = "timeout"  # longer than max_connecting_gap_s: idle whatever comes next
    OFFLINE = "offline"  # offline on every platform: idle whatever comes next


@dataclass(frozen=True)
class ClosedGap:
    rider_id: str
    start: float  # tA: the end of the previous active period (platform clock, epoch s)
    end: float | None  # tB for Cause.ACCEPTED, else None (not known yet)
    at: float  # the event time at which the gap was known to be closed
    cause: Cause
    previous_order: str | None
    next_order: str | None = None


@dataclass(frozen=True)
class Flag:
    """A closed gap, classified: the fields of ``shared.events.GapFlagged``."""

    rider_id: str
    start: float
    end: float
    phase: Phase
    why: str
    previous_order: str | None
    next_order: str | None

    @property
    def continuous_delivery(self) -> bool | None:
        return self.phase.continuous_delivery


@dataclass
class _Rider:
    active: dict[str, float] = field(default_factory=dict)  # order_id -> accepted
    online: set[str] = field(default_factory=set)  # platforms the rider is online on
    presence_seen: bool = False
    gap_start: float | None = None
    gap_prev: str | None = None
    pending: ClosedGap | None = None  # closed by an accept; held until time moves past it


class GapTracker:
    """Per-rider state of orders and presence, as little as deciding a gap's end needs."""

    def __init__(self, params: Params | None = None) -> None:
        self.params = params or Params()
        self._riders: dict[str, _Rider] = {}
        self.watermark = float("-inf")

    def open_gaps(self) -> int:
        """Gaps opened and not closed yet (for metrics and tests)."""
        return sum(1 for r in self._riders.values() if r.gap_start is not None)

    def observe(self, *, rider_id: str, kind: str, type_: str, platform: str, t: float,
                order_id: str | None = None) -> list[ClosedGap]:
        """One platform event (DATA_CONTRACT §1), in the rider's order. Returns the gaps it closes
        (including ones that time out at its time)."""
        closed = self.advance(t)
        r = self._riders.setdefault(rider_id, _Rider())
        if r.pending is not None and r.pending.at < t:
            closed.append(r.pending)
            r.pending = None
        if kind == "presence":
            r.presence_seen = True
            if type_ == "online":
                r.online.add(platform)
            elif type_ == "offline":
                r.online.discard(platform)
                if not r.online and r.gap_start is not None:
                    closed.append(self._close(rider_id, r, t, Cause.OFFLINE))
            return closed
        if order_id is None:
            return closed
        if type_ == "accepted":
            if r.gap_start is not None and not r.active:
                if t > r.gap_start:
                    # held until time moves on: an order cancelled the instant it was accepted is
                    # no active period (the batch engine drops it) and leaves the gap open
                    r.pending = self._close(rider_id, r, t, Cause.ACCEPTED, end=t, next_order=order_id)
                else:  # accepted the instant the last ended: one active period, no gap (as in batch)
                    r.gap_start, r.gap_prev = None, None
            r.active[order_id] = t
            if r.presence_seen:
                r.online.add(platform)  # an order is proof of being online on that platform
        elif type_ in ("delivered", "cancelled"):
            accepted = r.active.pop(order_id, None)
            p = r.pending
            if p is not None and p.next_order == order_id and accepted == t and not r.active:
                r.gap_start, r.gap_prev, r.pending = p.start, p.previous_order, None  # undo the close
            elif not r.active:
                r.gap_start, r.gap_prev = t, order_id
        return closed

    def advance(self, now: float) -> list[ClosedGap]:
        """Event time moved on to ``now`` (the latest time seen on any feed): gaps open for longer
        than ``max_connecting_gap_s`` close as idle."""
        if now <= self.watermark:
            return []
        self.watermark = now
        limit = self.params.max_connecting_gap_s
        out = []
        for rid, r in self._riders.items():
            if r.pending is not None and r.pending.at < now:
                out.append(r.pending)
                r.pending = None
            if r.gap_start is not None and now - r.gap_start > limit:
                out.append(self._close(rid, r, r.gap_start + limit, Cause.TIMEOUT))
        return out

    @staticmethod
    def _close(rider_id: str, r: _Rider, at: float, cause: Cause, *, end: float | None = None,
               next_order: str | None = None) -> ClosedGap:
        assert r.gap_start is not None
        gap = ClosedGap(rider_id, r.gap_start, end, at, cause, r.gap_prev, next_order)
        r.gap_start, r.gap_prev = None, None
        return gap


def flag_for(closed: ClosedGap, analysis: DayAnalysis, params: Params) -> Flag | None:
    """The batch engine's verdict on ``closed``, from its analysis of the rider's stored feeds.
    ``None`` when the timeline has no gap starting at ``closed.start`` (the feeds that opened it
    are not stored: nothing to flag)."""
    timeline = analysis.timeline
    gap = next((g for g in timeline.gaps if np.isfinite(g.start) and abs(g.start - closed.start) <= TIME_TOLERANCE_S),
               None)
    if gap is None:
        return None
    prev = gap.prev.order_id if gap.prev is not None else closed.previous_order
    if np.isfinite(gap.end):
        # the engine knows both ends (for a timeout or offline close too, when the next order is
        # already stored): its classification is the answer
        nxt = gap.next.order_id if gap.next is not None else closed.next_order
        return Flag(closed.rider_id, gap.start, gap.end, gap.phase, gap.why, prev, nxt)
    if closed.end is not None:
        phase, why, _ = classify_gap(gap.start, closed.end, list(timeline.online), analysis.grid, params)
        return Flag(closed.rider_id, gap.start, closed.end, phase, why, prev, closed.next_order)
    # open-ended in the store and no next order yet: what closed it decides why it can no longer
    # be a connection (DATA_CONTRACT §5.4: longer than 30 min, or not online throughout)
    why = "gap_too_long" if closed.cause is Cause.TIMEOUT else "went_offline"
    return Flag(closed.rider_id, gap.start, closed.at, Phase.IDLE, why, prev, None)


__all__ = ["Cause", "ClosedGap", "Flag", "GapTracker", "flag_for"]
