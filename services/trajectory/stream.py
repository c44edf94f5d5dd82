"""The trajectory service as its own process on Kafka: a faust-streaming app whose agents call the
framework-free handlers of :mod:`services.trajectory.service`.

- ``rider.platform-events`` and ``rider.gps``: batches of up to ``XJ_FEED_BATCH`` (500) events or
  200 ms (``take_events``: ``take`` with the events' topic, offset and headers), one database unit
  of work per batch. Platform events also drive the :class:`~services.trajectory.gaps.GapTracker`;
  each closed gap is classified by the batch engine over the rider's stored day and published as
  ``GapFlagged`` on ``trajectory.gap-flagged`` (key ``rider_id``).
- ``trajectory.assessment-requested`` → ``trajectory.assessment-ready``.
- Bad messages go to ``<topic>.dlq`` with the reason in the ``error`` header: faust acks a batch
  even when the agent raises, and an agent that raises dies, so nothing may escape an agent.

Offsets are committed by faust after the batch has been handled (acks at the end of each
``take_events`` round): at least once; storing is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import faust

from services.trajectory import service
from services.trajectory.adapters.feeds import read_platform_messages
from services.trajectory.adapters.store import FeedStore
from services.trajectory.domain.assess import analyse
from services.trajectory.domain.model import Params
from services.trajectory.gaps import ClosedGap, Flag, GapTracker, flag_for
from services.trajectory.runtime import GROUP, TrajectorySettings, purge_once
from shared import topics
from shared.bus import Headers, Message, handle_with_dead_letters
from shared.events import GapFlagged

logger = logging.getLogger(__name__)

APP_ID = "xianjie-trajectory"  # the consumer group of every trajectory worker


class FaustPublisher:
    """``publish`` onto Kafka through the app's producer (``acks=all``), waiting for the ack."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._topics: dict[str, Any] = {}

    def _topic(self, name: str) -> Any:
        t = self._topics.get(name)
        if t is None:
            t = self._topics[name] = self.app.topic(name, key_serializer="raw", value_serializer="raw")
        return t

    async def publish(self, topic: str, key: str, value: bytes, headers: Headers = ()) -> None:
        fut = await self._topic(topic).send(key=key.encode(), value=value, headers=list(headers) or None)
        await fut  # the broker's acknowledgement


def to_message(event: Any) -> Message:
    m = event.message
    raw_headers = m.headers or ()
    items = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
    headers = tuple((str(k), bytes(v) if v is not None else b"") for k, v in items)
    key = m.key.decode(errors="replace") if isinstance(m.key, bytes | bytearray) else str(m.key or "")
    value = m.value if isinstance(m.value, bytes | bytearray) else bytes(event.value)
    return Message(m.topic, key, bytes(value), headers, m.partition, m.offset)


@dataclass
class Worker:
    """The state of one trajectory worker process."""

    store: FeedStore
    settings: TrajectorySettings
    publisher: FaustPublisher
    params: Params = field(default_factory=Params)
    tracker: GapTracker = field(init=False)
    _closes: asyncio.Queue[tuple[float, ClosedGap]] | None = None
    stats: dict[str, int] = field(default_factory=lambda: {"feeds": 0, "requests": 0, "flags": 0, "dead": 0})

    def __post_init__(self) -> None:
        self.tracker = GapTracker(self.params)

    async def reject(self, m: Message, reason: str) -> None:
        self.stats["dead"] += 1
        await self.publisher.publish(topics.dead_letter(m.topic), m.key, m.value,
                                     (*m.headers, ("error", reason[:500].encode()), ("group", APP_ID.encode()),
                                      ("source-offset", str(m.offset).encode())))

    async def _safely(self, batch: Sequence[Message], handler: Any) -> None:
        """The batch; if it raises, message by message, dead-lettering the ones that still fail."""
        await handle_with_dead_letters(self.publisher, batch, handler, APP_ID)  # type: ignore[arg-type]

    async def feeds(self, batch: Sequence[Message]) -> None:
        async def handle(msgs: Sequence[Message]) -> None:
            await service.handle_feed_batch(self.store, msgs, tz=self.settings.timezone, reject=self.reject)
            if msgs and msgs[0].topic == topics.PLATFORM_EVENTS:
                self._track(msgs)

        await self._safely(batch, handle)
        self.stats["feeds"] += len(batch)

    async def requests(self, batch: Sequence[Message]) -> None:
        async def handle(msgs: Sequence[Message]) -> None:
            await service.handle_assessment_requests(self.store, self.publisher, msgs, self.params,
                                                     self.settings.timezone, reject=self.reject)

        await self._safely(batch, handle)
        self.stats["requests"] += len(batch)

    # -- streaming gaps

    def _track(self, msgs: Sequence[Message]) -> None:
        parsed, _ = read_platform_messages([m.value for m in msgs], self.settings.timezone, topics.PLATFORM_EVENTS)
        closed: list[ClosedGap] = []
        for ev, t in sorted(parsed, key=lambda x: x[1]):
            closed += self.tracker.observe(rider_id=ev.rider_id, kind=ev.kind, type_=ev.type,
                                           platform=ev.platform, t=t, order_id=ev.order_id)
        now = time.monotonic()
        for c in closed:
            self.closes.put_nowait((now, c))

    @property
    def closes(self) -> asyncio.Queue[tuple[float, ClosedGap]]:
        if self._closes is None:
            self._closes = asyncio.Queue()
        return self._closes

    async def classify_forever(self) -> None:
        """Flag closed gaps, each once the feeds had ``gap_settle_s`` to be stored (pings travel on
        their own topic and agent)."""
        while True:
            closed_at, c = await self.closes.get()
            # settle from when the gap closed, not from when it is taken: a queue of gaps waits once
            await asyncio.sleep(max(0.0, closed_at + self.settings.gap_settle_s - time.monotonic()))
            try:
                flag = await asyncio.to_thread(self.classify, c)
                if flag is not None:
                    await self.publisher.publish(topics.GAP_FLAGGED, flag.rider_id, gap_envelope(flag))
                    self.stats["flags"] += 1
            except Exception:  # one rider's fault must not stop flagging the others
                logger.exception("classifying the gap of %s from %.3f failed", c.rider_id, c.start)

    def classify(self, c: ClosedGap) -> Flag | None:
        d0, d1 = service.day_window(c.start, self.settings.timezone)
        day = self.store.load_rider(c.rider_id, d0, d1)
        return flag_for(c, analyse(day, self.params), self.params)


def gap_envelope(f: Flag) -> bytes:
    ev = GapFlagged(rider_id=f.rider_id, start=datetime.fromtimestamp(f.start, UTC),
                    end=datetime.fromtimestamp(f.end, UTC), phase=f.phase.value,
                    continuous_delivery=f.continuous_delivery, previous_order=f.previous_order,
                    next_order=f.next_order, why=f.why)
    return ev.envelope(key=f.rider_id, producer=service.PRODUCER).to_bytes()


def make_app(settings: TrajectorySettings, store: FeedStore) -> tuple[faust.App, Worker]:
    """The faust app and the worker state its agents share."""
    app = faust.App(
        settings.worker_group,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",  # no tables: the feeds live in the database, which survives restarts
        datadir=str(settings.data_dir / "faust"),
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        producer_acks=-1,
        web_enabled=settings.worker_web_port > 0,
        web_port=settings.worker_web_port or 6066,
        web_bind="0.0.0.0",
        broker_heartbeat_interval=1.0,
        broker_session_timeout=10.0,
        consumer_auto_offset_reset="earliest",
    )
    worker = Worker(store, settings, FaustPublisher(app))
    raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw", "partitions": settings.partitions}
    platform = app.topic(topics.PLATFORM_EVENTS, **raw)
    gps = app.topic(topics.GPS, **raw)
    requests = app.topic(topics.ASSESSMENT_REQUESTED, **raw)
    batch, within = settings.feed_batch, settings.feed_within_s

    @app.agent(platform, name="trajectory.platform-events")
    async def on_platform(stream: Any) -> None:
        async for events in stream.take_events(batch, within=within):
            await worker.feeds([to_message(e) for e in events])

    @app.agent(gps, name="trajectory.gps")
    async def on_gps(stream: Any) -> None:
        async for events in stream.take_events(batch, within=within):
            await worker.feeds([to_message(e) for e in events])

    @app.agent(requests, name="trajectory.assessment-requests")
    async def on_requests(stream: Any) -> None:
        async for events in stream.take_events(settings.request_batch, within=within):
            await worker.requests([to_message(e) for e in events])

    @app.task
    async def flag_gaps() -> None:
        await worker.classify_forever()

    @app.timer(settings.purge_every_s)
    async def retention() -> None:
        with contextlib.suppress(Exception):
            await purge_once(store, settings)

    return app, worker


def run_worker(settings: TrajectorySettings | None = None, *, loglevel: str = "warn") -> int:
    """``python -m services.trajectory worker``: run until SIGTERM or SIGINT."""
    from services.bootstrap import database
    from services.trajectory.replay import ensure_topics
    from services.trajectory.runtime import open_store

    settings = settings or TrajectorySettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # faust makes only the last level of its datadir
    consumed = (topics.PLATFORM_EVENTS, topics.GPS, topics.ASSESSMENT_REQUESTED)
    ensure_topics(settings.kafka_bootstrap, (*consumed, *map(topics.dead_letter, consumed), topics.ASSESSMENT_READY,
                                             topics.GAP_FLAGGED), settings.partitions)
    engine = database(settings, ("trajectory",))
    store = open_store(engine)
    app, _ = make_app(settings, store)
    logger.info("trajectory worker (group %s, faust %s) on %s", APP_ID, faust.__version__, settings.kafka_bootstrap)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as e:
        return int(e.code or 0)
    finally:
        engine.dispose()
    return 0


__all__ = ["APP_ID", "GROUP", "FaustPublisher", "Worker", "gap_envelope", "make_app", "run_worker", "to_message"]
