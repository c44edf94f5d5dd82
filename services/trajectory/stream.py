"""The trajectory service as its own process on Kafka: a faust-streaming app whose agents call the
framework-free handlers of :mod:`services.trajectory.service`.

- ``rider.platform-events``: batches of up to ``XJ_FEED_BATCH`` (500) events or 200 ms
  (``take_events``: ``take`` with the events' topic, offset and headers), one database unit of
  work per batch.
- ``rider.gps``: :class:`PingConsumer`, a batch consumer inside the worker (see there why). Platform events also drive the :class:`~services.trajectory.gaps.GapTracker`;
  each closed gap is recorded in the store before its events are acknowledged, classified by the
  batch engine over the rider's stored day and published as ``GapFlagged`` on
  ``trajectory.gap-flagged`` (key ``rider_id``), then marked flagged. A starting worker rebuilds the
  tracker from the platform events of the last ``XJ_GAP_REBUILD_S``; gaps recorded and not flagged
  within a lease (their worker died) are swept up by any worker, so none is lost and, but for a
  worker dying between publishing and marking, none is flagged twice.
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
from collections.abc import Iterable, Sequence
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
from shared.bus import (
    Headers,
    Message,
    dead_letter_copy,
    handle_with_dead_letters,
    patiently,
)
from shared.bus_kafka import record_message
from shared.events import GapFlagged

logger = logging.getLogger(__name__)

APP_ID = "xianjie-trajectory"
# an empty poll this soon after partitions are assigned may only mean their first fetch is still on
# its way (0.75 s measured on a freshly formatted broker), not that nothing is waiting in them
ASSIGN_GRACE_S = 2.0  # the consumer group of every trajectory worker


def consumer_groups(worker_group: str) -> dict[str, tuple[str, ...]]:
    """The consumer groups a trajectory worker joins and the topics each reads."""
    return {worker_group: (topics.PLATFORM_EVENTS, topics.ASSESSMENT_REQUESTED), f"{worker_group}.gps": (topics.GPS,)}


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
    # monotonic time at which every ping then on the broker had been read, and since stored; None
    # while no ping consumer runs in this worker
    gps_synced: float | None = None

    def __post_init__(self) -> None:
        self.tracker = GapTracker(self.params)

    async def reject(self, m: Message, reason: str) -> None:
        self.stats["dead"] += 1
        await self.publisher.publish(topics.dead_letter(m.topic), m.key, *dead_letter_copy(m, reason, APP_ID))

    async def _safely(self, batch: Sequence[Message], handler: Any) -> None:
        """The batch; if it raises, message by message, dead-lettering the ones that still fail."""
        await handle_with_dead_letters(self.publisher, batch, handler, APP_ID)  # type: ignore[arg-type]

    async def feeds(self, batch: Sequence[Message]) -> None:
        async def handle(msgs: Sequence[Message]) -> None:
            await service.handle_feed_batch(self.store, msgs, tz=self.settings.timezone, reject=self.reject)
            if msgs and msgs[0].topic == topics.PLATFORM_EVENTS:
                await self._track(msgs)

        await self._safely(batch, handle)
        self.stats["feeds"] += len(batch)

    async def requests(self, batch: Sequence[Message]) -> None:
        await self.pings_stored_since(time.monotonic())  # a rider's pings in the consumer's lag are evidence too

        async def handle(msgs: Sequence[Message]) -> None:
            await service.handle_assessment_requests(self.store, self.publisher, msgs, self.params,
                                                     self.settings.timezone, reject=self.reject)

        await self._safely(batch, handle)
        self.stats["requests"] += len(batch)

    # -- streaming gaps

    async def _track(self, msgs: Sequence[Message]) -> None:
        """Feed the tracker a stored batch; record the gaps it closes before the batch is
        acknowledged (a worker that dies now leaves them to ``sweep_forever``), then queue them."""
        parsed, _ = read_platform_messages([m.value for m in msgs], self.settings.timezone, topics.PLATFORM_EVENTS)
        closed = self._observe((ev.rider_id, ev.kind, ev.type, ev.platform, t, ev.order_id)
                               for ev, t in sorted(parsed, key=lambda x: x[1]))
        await asyncio.to_thread(self.store.record_gaps, closed)
        now = time.monotonic()
        for c in closed:
            self.closes.put_nowait((now, c))

    def rebuild(self) -> int:
        """Before consuming: the tracker as it was, from the platform events received in the last
        ``gap_rebuild_s``; gaps that closed meanwhile and were never recorded are recorded now (a
        gap recorded before stays as it is). Returns the events replayed."""
        since = time.time() - self.settings.gap_rebuild_s
        events = self.store.recent_events(since)
        self.store.record_gaps(self._observe(events))
        logger.info("gap tracker rebuilt from %d platform events: %d gaps open", len(events), self.tracker.open_gaps())
        return len(events)

    def _observe(self, events: Iterable[tuple[str, str, str, str, float, str | None]]) -> list[ClosedGap]:
        """(rider, kind, type, platform, t, order) in time order into the tracker: the gaps closed."""
        closed: list[ClosedGap] = []
        for rider, kind, type_, platform, t, order in events:
            closed += self.tracker.observe(rider_id=rider, kind=kind, type_=type_, platform=platform, t=t,
                                           order_id=order)
        return closed

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
            await self.pings_stored_since(closed_at)
            try:
                mine = await asyncio.to_thread(self.store.claim_gap, c.rider_id, c.start,
                                               lease_s=self.settings.gap_lease_s)
            except Exception:  # the database away: the sweep flags it later
                logger.warning("could not claim the gap of %s from %.3f; left to the sweep", c.rider_id, c.start)
                continue
            if mine:
                await self.flag(c)

    async def pings_stored_since(self, since: float) -> None:
        """Wait until the pings that were on the broker at ``since`` (monotonic) are stored (the
        ping consumer caught up after that), or ``gap_sync_max_s`` -- a consumer far behind must
        not hold every flag and answer back; they are then made on what is stored. Gaps are
        judged and assessment requests answered after this. It covers the worker's own
        ``rider.gps`` partitions; with several workers a rider's pings may be another's (the two
        topics are read in different consumer groups), which only the settle time covers."""
        deadline = since + self.settings.gap_sync_max_s
        while self.gps_synced is not None and self.gps_synced < since:
            if time.monotonic() >= deadline:
                logger.warning("pings are behind by more than %.0f s; going on with what is stored",
                               self.settings.gap_sync_max_s)
                return
            await asyncio.sleep(0.02)

    async def flag(self, c: ClosedGap) -> None:
        """Classify a claimed gap, publish its GapFlagged and mark it flagged (at least once: a
        worker dying between the two publishes it again after the lease)."""
        try:
            flag = await asyncio.to_thread(self.classify, c)
            if flag is not None:
                await self.publisher.publish(topics.GAP_FLAGGED, flag.rider_id, gap_envelope(flag))
                self.stats["flags"] += 1
            await asyncio.to_thread(self.store.mark_flagged, c.rider_id, c.start)
        except Exception:  # one rider's fault must not stop flagging the others; the lease lets it retry
            logger.exception("classifying the gap of %s from %.3f failed", c.rider_id, c.start)

    async def sweep_forever(self) -> None:
        """Every ``gap_sweep_s``: gaps recorded but not flagged within their lease (a worker died
        after recording them, or the database was away) are taken and flagged."""
        while True:
            await asyncio.sleep(self.settings.gap_sweep_s)
            try:
                await self.sweep_once()
            except Exception:
                logger.exception("sweeping unflagged gaps failed; trying again later")

    async def sweep_once(self) -> int:
        cutoff = time.time() - self.settings.gap_lease_s
        taken = await asyncio.to_thread(self.store.claim_gaps, recorded_before=cutoff, lease_s=self.settings.gap_lease_s)
        for c in taken:
            await self.flag(c)
        return len(taken)

    def classify(self, c: ClosedGap) -> Flag | None:
        d0, d1 = service.day_window(c.start, self.settings.timezone)
        day = self.store.load_rider(c.rider_id, d0, d1)
        return flag_for(c, analyse(day, self.params), self.params)


class PingConsumer:
    """``rider.gps`` -- nearly all the traffic, a ping every 5-10 s from every rider on shift -- read
    by a batch consumer of the worker's own (consumer group ``<worker group>.gps``) rather than a
    faust agent: faust's stream costs about 70 us an event (an agent that does nothing takes 14k
    events/s on one core), more than reading, parsing and storing a ping together. The consumer is
    librdkafka's (confluent-kafka), which hands over a batch in about 0.9 us a record where
    aiokafka's pure-Python fetch takes 1.3-1.6 us (both measured on one core here). A batch (up to
    ``XJ_GPS_BATCH`` records, or what came within ``XJ_FEED_WITHIN_S``) is parsed and stored in one
    unit of work while the next one is fetched; its offsets are committed (asynchronously) once it
    is stored (at least once; storing is idempotent), and partitions being taken away wait for the
    batch in flight. Unreadable pings go to ``rider.gps.dlq``; while the database is away the batch is
    retried and nothing more is read (back-pressure, nothing dead-lettered for it)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.settings = worker.settings
        self._inflight: asyncio.Task[None] | None = None
        self._assigned_at = float("inf")  # when it was last given its partitions (monotonic)
        self.group = next(g for g, names in consumer_groups(self.settings.worker_group).items() if topics.GPS in names)

    def _consumer(self, loop: asyncio.AbstractEventLoop) -> Any:
        from confluent_kafka import Consumer

        def assigned(_consumer: Any, _partitions: Any) -> None:  # called in the thread polling
            self._assigned_at = time.monotonic()

        def revoked(_consumer: Any, _partitions: Any) -> None:  # called in the thread polling; must not raise
            self._assigned_at = float("inf")
            try:
                asyncio.run_coroutine_threadsafe(self.drain(), loop).result(timeout=120)
            except Exception:
                logger.warning("rider.gps: the batch in flight was not stored before its partitions were taken "
                               "away; their next owner reads it again", exc_info=True)

        def committed(err: Any, _partitions: Any) -> None:
            if err is not None:
                logger.info("gps offsets not committed (%s): the partitions' next owner reads the batch again", err)

        n = self.settings.gps_batch
        consumer = Consumer({
            "bootstrap.servers": self.settings.kafka_bootstrap, "group.id": self.group,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000, "heartbeat.interval.ms": 1_000,
            # keep ten batches prefetched; librdkafka's default pause of 1 s once that many are
            # queued starves a consumer that keeps up (measured: 170k records/s -> 1.2M at 5 ms)
            "queued.min.messages": 10 * n, "fetch.queue.backoff.ms": 5, "max.partition.fetch.bytes": 4 << 20,
            "logger": logging.getLogger("confluent_kafka"), "on_commit": committed,
        })
        consumer.subscribe([topics.GPS], on_assign=assigned, on_revoke=revoked, on_lost=revoked)
        return consumer

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        consumer = await asyncio.to_thread(self._consumer, loop)
        poll: asyncio.Future[list[Any]] | None = None
        self.worker.gps_synced = float("-inf")
        try:
            while True:
                began = time.monotonic()
                poll = asyncio.ensure_future(asyncio.to_thread(
                    consumer.consume, self.settings.gps_batch, self.settings.feed_within_s))
                records = await asyncio.shield(poll)
                caught_up = len(records) < self.settings.gps_batch  # what was there when it began is read
                if records:
                    await self._take(consumer, records, synced_at=began if caught_up else None)
                elif began > self._assigned_at + ASSIGN_GRACE_S and (self._inflight is None or self._inflight.done()):
                    self._synced(began)  # nothing waiting in its partitions (or it was given none)
        finally:
            with contextlib.suppress(Exception):
                if poll is not None:
                    await asyncio.wait_for(poll, 30)  # librdkafka's consumer is not to be closed mid-poll
                await self.drain()
            await asyncio.to_thread(consumer.close)

    def _synced(self, began: float) -> None:
        self.worker.gps_synced = max(self.worker.gps_synced or float("-inf"), began)

    async def _take(self, consumer: Any, records: list[Any], synced_at: float | None) -> None:
        """Parse a batch (while the one before is being stored), then hand it to the store;
        ``synced_at``: the watermark to set once it is stored (None: more was waiting)."""
        good = [r for r in records if r.error() is None]  # librdkafka also hands over events, as errors
        if len(good) < len(records):
            for r in records:
                if r.error() is not None:
                    logger.warning("rider.gps: %s", r.error())
        gps, bad = await asyncio.to_thread(service.read_pings, [r.value() or b"" for r in good], self.settings.timezone)
        for i, reason in bad:
            await self.worker.reject(record_message(good[i]), reason)
        await self.drain()
        last = {r.partition(): r for r in good}
        offsets = {(r.topic(), p): r.offset() + 1 for p, r in last.items()}
        self._inflight = asyncio.create_task(self._store(consumer, good, gps, offsets, synced_at))

    async def drain(self) -> None:
        """Wait for the batch in flight (stored and its offsets sent to be committed)."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    async def _store(self, consumer: Any, records: list[Any], gps: Any, offsets: dict[tuple[str, int], int],
                     synced_at: float | None) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        try:  # the database away: waited for, nothing more read meanwhile
            await patiently(f"storing {len(records)} pings", lambda: asyncio.to_thread(self.worker.store.add, gps=gps))
        except Exception:  # something in the batch the database refuses: find it, message by message
            logger.warning("a batch of %d pings failed; storing them one by one", len(records), exc_info=True)
            await self.worker.feeds([record_message(r) for r in records])
        self.worker.stats["feeds"] += len(records)
        if synced_at is not None:
            self._synced(synced_at)
        if not offsets:
            return
        try:  # asynchronous: a synchronous commit waits for a rebalance that waits for this batch
            consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=True)
        except (KafkaException, RuntimeError) as e:
            logger.info("gps offsets not committed (%s): the partitions' next owner reads the batch again", e)


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
    requests = app.topic(topics.ASSESSMENT_REQUESTED, **raw)
    batch, within = settings.feed_batch, settings.feed_within_s

    @app.agent(platform, name="trajectory.platform-events")
    async def on_platform(stream: Any) -> None:
        async for events in stream.take_events(batch, within=within):
            await worker.feeds([to_message(e) for e in events])

    @app.task
    async def gps() -> None:
        await PingConsumer(worker).run()

    @app.agent(requests, name="trajectory.assessment-requests")
    async def on_requests(stream: Any) -> None:
        async for events in stream.take_events(settings.request_batch, within=within):
            await worker.requests([to_message(e) for e in events])

    @app.task
    async def flag_gaps() -> None:
        await worker.classify_forever()

    @app.task
    async def sweep_gaps() -> None:
        await worker.sweep_forever()

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
    app, state = make_app(settings, store)
    state.rebuild()  # before the first event is consumed
    logger.info("trajectory worker (group %s, faust %s) on %s", APP_ID, faust.__version__, settings.kafka_bootstrap)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as e:
        return int(e.code or 0)
    finally:
        engine.dispose()
    return 0


__all__ = ["APP_ID", "GROUP", "FaustPublisher", "PingConsumer", "consumer_groups", "Worker", "gap_envelope", "make_app", "run_worker", "to_message"]
