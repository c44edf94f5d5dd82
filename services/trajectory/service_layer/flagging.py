"""Gap flags, in both runtimes: each gap between a rider's orders is judged by the batch engine over
the rider's stored feeds as the gap closes (the next order accepted, 30 min without one, or the
rider offline), published as ``GapFlagged`` and recorded with what it said and saw. A flag made when
the order closed, before any claim, is the strongest evidence a rider can have.

- On Kafka (:mod:`services.trajectory.entrypoints.stream`) the streaming :class:`~services.trajectory.domain.gaps.GapTracker`
  notices closes event by event, and a gap is judged once every ping the broker held is stored.
- On the embedded default feeds arrive as uploads, in any order and any pieces:
  :class:`UploadFlagger` finds the closed gaps of the riders an upload touched in the engine's own
  timeline of their stored feeds once the rider's uploads have been quiet for ``XJ_GAP_QUIET_S``
  (pieces of one export come together), and judges each gap once the rider's GPS reaches past its
  end (or ``XJ_GAP_GPS_WAIT_S`` after it was found, on whatever is stored then).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import numpy as np

from services.trajectory.adapters.store import FeedStore
from services.trajectory.domain.assess import DayAnalysis, analyse
from services.trajectory.domain.gaps import Cause, ClosedGap, Flag, flag_for
from services.trajectory.domain.model import Params
from services.trajectory.service_layer.handlers import PRODUCER, day_window
from shared import topics
from shared.events import GapFlagged

logger = logging.getLogger(__name__)

Publish = Callable[[str, str, bytes], Awaitable[None]]


def gap_envelope(f: Flag) -> bytes:
    ev = GapFlagged(rider_id=f.rider_id, start=datetime.fromtimestamp(f.start, UTC),
                    end=datetime.fromtimestamp(f.end, UTC), phase=f.phase.value,
                    continuous_delivery=f.continuous_delivery, previous_order=f.previous_order,
                    next_order=f.next_order, why=f.why)
    return ev.envelope(key=f.rider_id, producer=PRODUCER).to_bytes()


def judge(store: FeedStore, c: ClosedGap, params: Params, tz: str) -> tuple[Flag | None, int, int]:
    """The engine's verdict on a closed gap from the rider's stored day, and the fixes and platform
    events it was made on."""
    d0, d1 = day_window(c.start, tz)
    day = store.load_rider(c.rider_id, d0, d1)
    return flag_for(c, analyse(day, params), params), len(day.gps), len(day.orders) + len(day.presence)


async def flag(store: FeedStore, publish: Publish, c: ClosedGap, params: Params, tz: str) -> Flag | None:
    """Judge a claimed gap, publish its ``GapFlagged`` and record it flagged with what it said and saw
    (at least once: dying between the two publishes it again once the claim's lease runs out)."""
    verdict, pings, events = await asyncio.to_thread(judge, store, c, params, tz)
    if verdict is not None:
        await publish(topics.GAP_FLAGGED, verdict.rider_id, gap_envelope(verdict))
    await asyncio.to_thread(store.mark_flagged, c.rider_id, c.start, flag=verdict, pings_seen=pings,
                            events_seen=events)
    return verdict


def closed_gaps(a: DayAnalysis, params: Params) -> list[tuple[ClosedGap, float]]:
    """The gaps of an analysed rider-day that can no longer become anything else, each with the
    time the rider's GPS must reach before it is judged on complete data: closed by the next
    order's accept ([tA, tB]), by the rider going offline on every platform, or by 30 minutes of
    the rider's own platform feeds passing without an order."""
    tl = a.timeline
    # how far the rider's platform feeds reach (GPS does not count: an upload of the whole day's
    # GPS must not time out a gap whose next order is in a platform upload still to come)
    seen = max([t for o in tl.orders for t in (o.accepted, o.end_or_inf) if np.isfinite(t)]
               + [t for span in tl.online for t in span if np.isfinite(t)], default=-np.inf)
    out = []
    for g in tl.gaps:
        if not np.isfinite(g.start):
            continue
        prev = g.prev.order_id if g.prev is not None else None
        if np.isfinite(g.end):
            nxt = g.next.order_id if g.next is not None else None
            out.append((ClosedGap(a.rider_id, g.start, g.end, g.end, Cause.ACCEPTED, prev, nxt), g.end))
            continue
        span = next(((s, e) for s, e in tl.online if s <= g.start <= e), None)
        off = g.start if span is None else span[1]  # offline on every platform from
        limit = g.start + params.max_connecting_gap_s
        if span is not None and off == g.start:
            pass  # a platform without presence events is "online" until its last order ends: no sign
        elif np.isfinite(off) and off <= limit:
            out.append((ClosedGap(a.rider_id, g.start, None, off, Cause.OFFLINE, prev), -np.inf))
        elif seen > limit:
            out.append((ClosedGap(a.rider_id, g.start, None, limit, Cause.TIMEOUT, prev), -np.inf))
    return out


class UploadFlagger:
    """Gap flags on the embedded default, where feeds come as uploads: see the module's text."""

    def __init__(self, store: FeedStore, publish: Publish, params: Params, tz: str, *, gps_wait_s: float = 600.0,
                 quiet_s: float = 2.0, lease_s: float = 60.0, every_s: float = 0.5) -> None:
        self.store, self.publish, self.params, self.tz = store, publish, params, tz
        self.gps_wait_s, self.quiet_s, self.lease_s, self.every_s = gps_wait_s, quiet_s, lease_s, every_s
        self._dirty: dict[str, set[float]] = {}  # rider -> local days (their start) an upload touched
        self._touched_at: dict[str, float] = {}  # rider -> when an upload last touched him (monotonic)
        self._found: dict[tuple[str, float], tuple[ClosedGap, float, float]] = {}  # gap -> (it, GPS due, found at)
        self._gps_end: dict[str, float] = {}  # rider -> his last cleaned fix (platform clock) when last read
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    def touched(self, spans: dict[str, tuple[float, float]]) -> None:
        """An upload stored feeds of these riders between these times (callable from any thread)."""
        for rider, (t0, t1) in spans.items():
            self._touched_at[rider] = time.monotonic()
            days = self._dirty.setdefault(rider, set())
            t = t0
            while True:
                days.add(day_window(t, self.tz, 0.0)[0])
                if t >= t1:
                    break
                t = min(t + 86400.0, t1)
        if self._loop is not None and self._wake is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, stop: asyncio.Event) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.every_s)
            self._wake.clear()
            try:
                await self.once()
            except Exception:  # one rider's fault must not stop flagging; the gaps stay recorded
                logger.exception("gap flagging failed; trying again")

    async def once(self, now: float | None = None) -> int:
        """Find the closed gaps of the riders touched since the last round; flag those whose GPS is
        in, or that waited ``gps_wait_s`` for it. Returns the gaps flagged."""
        # a rider's uploads come in pieces, in any order: his gaps are looked for once his uploads have
        # been quiet for quiet_s, so that a piece holding his presence or his next order is in
        calm = time.monotonic() - self.quiet_s
        ready = [r for r in list(self._dirty) if self._touched_at.get(r, 0.0) <= calm]
        for rider in ready:
            for d in sorted(self._dirty.pop(rider, set())):
                await asyncio.to_thread(self._find, rider, d)
        at = time.time() if now is None else now
        flagged = 0
        for key, (c, due, found) in list(self._found.items()):
            if due > self._gps_end.get(c.rider_id, -np.inf) and at - found < self.gps_wait_s:
                continue
            del self._found[key]
            if await asyncio.to_thread(self.store.claim_gap, c.rider_id, c.start, lease_s=self.lease_s):
                await flag(self.store, self.publish, c, self.params, self.tz)
                flagged += 1
        return flagged

    def _find(self, rider: str, day_start: float) -> None:
        day = self.store.load_rider(rider, day_start - 12 * 3600.0, day_start + 36 * 3600.0)
        a = analyse(day, self.params)
        self._gps_end[rider] = max(self._gps_end.get(rider, -np.inf),
                                   float(a.track_t[-1]) if a.track_t.size else -np.inf)
        gaps = closed_gaps(a, self.params)
        self.store.record_gaps([c for c, _ in gaps])
        open_ = self.store.unflagged(rider)
        now = time.time()
        for c, due in gaps:
            if c.start in open_:
                prior = self._found.get((rider, c.start))
                self._found[(rider, c.start)] = (c, due, prior[2] if prior else now)


__all__ = ["UploadFlagger", "closed_gaps", "flag", "gap_envelope", "judge"]
