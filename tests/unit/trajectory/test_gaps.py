"""Streaming gap detection flags the gaps the batch engine finds, with the same classification.

The stream is simulated as the worker sees it: each rider's platform events in time order; at
each close, the "store" holds what has arrived so far (feeds up to the close, plus a settle margin
for pings still in flight), and the flag comes from the engine's timeline over that."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from services.trajectory.adapters.feeds import load_dir
from services.trajectory.domain.assess import analyse
from services.trajectory.domain.gaps import Cause, GapTracker, flag_for
from services.trajectory.domain.model import Params, Phase, RiderDay, Track

pytestmark = pytest.mark.unit

SCENARIOS = Path(__file__).resolve().parents[2] / "data" / "scenarios"
SETTLE_S = 120.0  # the worker classifies a close once the feeds are this far past it


def events_of(day: RiderDay) -> list[tuple[float, int, dict]]:
    """The rider's platform events as the stream delivers them (time order)."""
    out = []
    for o in day.orders:
        out.append((o.accepted, 0, {"kind": "order", "type_": "accepted", "platform": o.platform, "order_id": o.order_id}))
        if o.ended is not None:
            out.append((o.ended, 1, {"kind": "order", "type_": o.end_kind or "delivered", "platform": o.platform,
                                     "order_id": o.order_id}))
    for p in day.presence:
        out.append((p.t, 2, {"kind": "presence", "type_": "online" if p.online else "offline",
                             "platform": p.platform}))
    return sorted(out, key=lambda x: (x[0], x[1]))


def up_to(day: RiderDay, t: float) -> RiderDay:
    """What a store holds at event time ``t``."""
    orders = []
    for o in day.orders:
        if o.accepted > t:
            continue
        orders.append(replace(o, arrived=_le(o.arrived, t), picked_up=_le(o.picked_up, t),
                              ended=_le(o.ended, t), end_kind=o.end_kind if _le(o.ended, t) is not None else None))
    presence = tuple(p for p in day.presence if p.t <= t)
    sel = day.gps.t <= t
    gps = Track(day.gps.t[sel], day.gps.lat[sel], day.gps.lon[sel], day.gps.accuracy[sel])
    return RiderDay(day.rider_id, tuple(orders), presence, gps)


def _le(x: float | None, t: float) -> float | None:
    return x if x is not None and x <= t else None


def streaming_flags(day: RiderDay, params: Params) -> list:
    tracker = GapTracker(params)
    flags = []
    closes = []
    for t, _, ev in events_of(day):
        closes += tracker.observe(rider_id=day.rider_id, t=t, **ev)
    closes += tracker.advance(float("inf"))
    for c in closes:
        seen = up_to(day, (c.end if c.end is not None else c.at) + SETTLE_S)
        f = flag_for(c, analyse(seen, params), params)
        assert f is not None, c
        flags.append((c, f))
    return flags


@pytest.mark.parametrize("name", sorted(p.name for p in SCENARIOS.iterdir() if (p / "platform.jsonl").exists()))
def test_streaming_flags_equal_the_batch_engine_gaps(name: str) -> None:
    params = Params()
    feeds = load_dir(SCENARIOS / name, "Asia/Shanghai")
    compared = 0
    for day in feeds.days.values():
        batch = {round(g.start, 3): g for g in analyse(day, params).timeline.gaps if np.isfinite(g.start)}
        for closed, flag in streaming_flags(day, params):
            g = batch[round(closed.start, 3)]
            if closed.cause is Cause.ACCEPTED:
                assert (flag.start, flag.end) == (g.start, g.end)
                assert (flag.phase, flag.why) == (g.phase, g.why), (day.rider_id, closed)
                assert flag.next_order == (g.next.order_id if g.next else None)
            else:  # closed early: idle, and the batch engine agrees it is no connection
                assert flag.phase is Phase.IDLE
                assert not g.phase.continuous_delivery, (day.rider_id, closed, g)
            assert flag.previous_order == (g.prev.order_id if g.prev else None)
            compared += 1
        # every finite gap of the day was flagged exactly once
        finite = [g for g in batch.values() if np.isfinite(g.end)]
        flagged = {round(c.start, 3) for c, _ in streaming_flags(day, params)}
        assert {round(g.start, 3) for g in finite} <= flagged
    assert compared > 0


def test_a_gap_closes_on_accept_timeout_and_offline() -> None:
    tr = GapTracker(Params())
    ob = tr.observe
    assert ob(rider_id="r", kind="presence", type_="online", platform="m", t=0) == []
    ob(rider_id="r", kind="order", type_="accepted", platform="m", t=10, order_id="a")
    assert ob(rider_id="r", kind="order", type_="delivered", platform="m", t=100, order_id="a") == []
    assert ob(rider_id="r", kind="order", type_="accepted", platform="m", t=400, order_id="b") == []
    [c] = tr.advance(400.5)  # held until time moves past the accept
    assert (c.start, c.end, c.cause, c.previous_order, c.next_order) == (100, 400, Cause.ACCEPTED, "a", "b")
    ob(rider_id="r", kind="order", type_="delivered", platform="m", t=500, order_id="b")
    assert tr.advance(500 + 1800) == []
    [c] = tr.advance(500 + 1801)
    assert (c.cause, c.at) == (Cause.TIMEOUT, 2300)
    ob(rider_id="r", kind="order", type_="accepted", platform="m", t=5000, order_id="c")
    ob(rider_id="r", kind="order", type_="delivered", platform="m", t=5100, order_id="c")
    [c] = ob(rider_id="r", kind="presence", type_="offline", platform="m", t=5200)
    assert c.cause is Cause.OFFLINE and c.start == 5100


def test_overlapping_orders_open_no_gap_until_the_last_ends() -> None:
    tr = GapTracker(Params())
    tr.observe(rider_id="r", kind="order", type_="accepted", platform="m", t=0, order_id="a")
    tr.observe(rider_id="r", kind="order", type_="accepted", platform="m", t=5, order_id="b")
    tr.observe(rider_id="r", kind="order", type_="delivered", platform="m", t=50, order_id="a")
    assert tr.open_gaps() == 0
    tr.observe(rider_id="r", kind="order", type_="delivered", platform="m", t=60, order_id="b")
    assert tr.open_gaps() == 1
