"""Gap flags survive a worker's death: the tracker is rebuilt from the stored platform events when
a worker starts, and a gap recorded but never flagged is flagged by the next worker's sweep --
once, however many workers saw it close."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson
import pytest

from services.trajectory.adapters.store import FeedStore, migrate
from services.trajectory.entrypoints.stream import Worker
from services.trajectory.settings import TrajectorySettings
from shared import topics
from shared.events import Envelope, GapFlagged, decode

from .helpers import SEED, lines, messages

pytestmark = pytest.mark.integration


class Published:
    def __init__(self) -> None:
        self.sent: list[GapFlagged] = []

    async def publish(self, topic: str, key: str, value: bytes, headers=()) -> None:  # type: ignore[no-untyped-def]
        assert topic == topics.GAP_FLAGGED
        ev = decode(Envelope.from_bytes(value))
        assert isinstance(ev, GapFlagged)
        self.sent.append(ev)


def worker(store: FeedStore, **settings: float) -> tuple[Worker, Published]:
    out = Published()
    return Worker(store, TrajectorySettings(gap_settle_s=0.0, **settings), out), out  # type: ignore[arg-type]


def seed_split() -> tuple[list[bytes], list[bytes]]:
    """The seed case's platform events up to the first delivery (the gap opens) and after it."""
    events = lines(SEED, "platform.jsonl")
    cut = next(i for i, x in enumerate(events) if orjson.loads(x)["type"] == "delivered") + 1
    return events[:cut], events[cut:]


async def flag_queued(w: Worker) -> int:
    """What classify_forever does with the queue, without its loop."""
    n = 0
    while not w.closes.empty():
        _, c = w.closes.get_nowait()
        if w.store.claim_gap(c.rider_id, c.start, lease_s=w.settings.gap_lease_s):
            await w.flag(c)
            n += 1
    return n


@pytest.fixture
def store(engine) -> FeedStore:  # type: ignore[no-untyped-def]
    migrate(engine)
    return FeedStore(engine)


def test_a_gap_opened_before_a_restart_is_flagged_after_it(store: FeedStore) -> None:
    before, after = seed_split()

    async def go() -> tuple[list[GapFlagged], list[GapFlagged]]:
        first, _ = worker(store)
        await first.feeds(messages(topics.GPS, lines(SEED, "gps.jsonl")))
        await first.feeds(messages(topics.PLATFORM_EVENTS, before))
        assert first.tracker.open_gaps() == 1 and await flag_queued(first) == 0
        # the worker dies; a new one starts on the same store, rebuilt, and one that is not
        rebuilt, out = worker(store)
        assert rebuilt.rebuild() == len(before)
        forgetful, lost = worker(store)
        for w in (rebuilt, forgetful):
            await w.feeds(messages(topics.PLATFORM_EVENTS, after))
            await flag_queued(w)
        return out.sent, lost.sent

    sent, without_rebuild = asyncio.run(go())
    assert without_rebuild == []  # what the worker did before gap flags were durable
    connecting = [f for f in sent if f.continuous_delivery]
    assert len(connecting) == 1 and connecting[0].phase == "connecting"


def test_a_gap_recorded_by_a_dead_worker_is_flagged_once_by_the_next(store: FeedStore) -> None:
    async def go() -> tuple[int, int, list[GapFlagged]]:
        dead, never = worker(store)
        await dead.feeds(messages(topics.GPS, lines(SEED, "gps.jsonl")))
        await dead.feeds(messages(topics.PLATFORM_EVENTS, lines(SEED, "platform.jsonl")))
        recorded = dead.closes.qsize()
        assert recorded >= 1 and never.sent == []  # recorded, then the worker died before flagging
        nxt, out = worker(store, gap_lease_s=0.0)
        nxt.rebuild()  # sees the same gaps close: recorded already, left as they are
        swept = await nxt.sweep_once()
        again = await nxt.sweep_once()  # flagged now: nothing left
        third, more = worker(store, gap_lease_s=0.0)
        third.rebuild()
        assert await third.sweep_once() == 0 and more.sent == []
        return swept, again, out.sent

    swept, again, sent = asyncio.run(go())
    assert swept >= 1 and again == 0
    assert len(sent) == swept and len({(f.rider_id, f.start) for f in sent}) == swept
    assert any(f.continuous_delivery for f in sent)


def test_the_broker_away_leaves_gaps_to_the_sweep_and_fails_requests_saying_ask_again(store: FeedStore) -> None:
    """Where the feed partitions end is asked of the broker; while it does not answer, a closed gap
    is not judged on what may be partial feeds (the sweep flags it later) and an evidence request
    is answered failed, saying to ask again -- the worker itself lives on."""
    from shared.events import AssessmentFailed, AssessmentRequested

    class Everything(Published):
        async def publish(self, topic: str, key: str, value: bytes, headers=()) -> None:  # type: ignore[no-untyped-def]
            self.sent.append(decode(Envelope.from_bytes(value)))  # type: ignore[arg-type]

    def away(*_: object) -> dict:
        raise TimeoutError("no broker")

    async def go() -> tuple[list, list]:
        w = Worker(store, TrajectorySettings(gap_settle_s=0.0, gap_sync_max_s=0.3), Everything())  # type: ignore[arg-type]
        w.feed_ends = away  # type: ignore[method-assign]
        await w.feeds(messages(topics.GPS, lines(SEED, "gps.jsonl")))
        await w.feeds(messages(topics.PLATFORM_EVENTS, lines(SEED, "platform.jsonl")))
        assert w.closes.qsize() >= 1
        classifying = asyncio.create_task(w.classify_forever())
        for _ in range(200):  # at most 10 s
            if w.closes.empty() or classifying.done():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # the last gap's wait for the broker runs out
        assert not classifying.done()  # alive, not crashed
        classifying.cancel()
        flags = list(w.publisher.sent)  # type: ignore[attr-defined]
        req = AssessmentRequested(request_id="r1", case_id="c1", rider_id="R1",
                                  incident_at=datetime(2026, 5, 14, 6, 10, tzinfo=UTC))
        await w.requests(messages(topics.ASSESSMENT_REQUESTED, [req.envelope(key="c1", producer="test").to_bytes()]))
        return flags, w.publisher.sent[len(flags):]  # type: ignore[attr-defined]

    flags, answers = asyncio.run(go())
    assert flags == []  # nothing judged while the broker could not say what was stored
    [failed] = answers
    assert isinstance(failed, AssessmentFailed) and "request the evidence again" in failed.reason
    assert "did not answer" in failed.reason
    swept, out = worker(store, gap_lease_s=0.0)
    assert asyncio.run(swept.sweep_once()) >= 1 and any(f.continuous_delivery for f in out.sent)
