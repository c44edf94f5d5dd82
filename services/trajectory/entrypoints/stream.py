"""The trajectory service as its own process on Kafka: a faust-streaming app whose agents call the
framework-free handlers of :mod:`services.trajectory.service_layer.handlers`.

- ``rider.platform-events``: batches of up to ``XJ_FEED_BATCH`` (500) events or 200 ms
  (``take_events``: ``take`` with the events' topic, offset and headers), one database unit of
  work per batch.
- ``rider.gps``: :class:`PingConsumer`, a batch consumer inside the worker (see there why). Platform events also drive the :class:`~services.trajectory.domain.gaps.GapTracker`;
  each closed gap is recorded in the store before its events are acknowledged, classified by the
  batch engine over the rider's stored day and published as ``GapFlagged`` on
  ``trajectory.gap-flagged`` (key ``rider_id``), then marked flagged. A starting worker rebuilds the
  tracker from the platform events of the last ``XJ_GAP_REBUILD_S``; gaps recorded and not flagged
  within a lease (their worker died) are swept up by any worker, so none is lost and, but for a
  worker dying between publishing and marking, none is flagged twice.
- ``trajectory.assessment-requested`` → ``trajectory.assessment-ready``. Read your writes, with any
  number of workers: every feed batch records, in its own transaction, how far in its partition it
  reaches (``trajectory_feed_progress``); a request is answered once every feed partition is stored
  up to the end the broker gave for it when the request was taken (``Worker.feeds_stored``), so the
  answer sees every ping and event accepted before the request, whichever worker read them. Uploads
  over HTTP are stored before they are answered and need no wait. Gaps are judged the same way.
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

from services.trajectory.adapters.feeds import read_platform_messages
from services.trajectory.adapters.store import FeedStore
from services.trajectory.domain.assess import analyse
from services.trajectory.domain.gaps import ClosedGap, Flag, GapTracker, flag_for
from services.trajectory.domain.model import Params
from services.trajectory.entrypoints.worker import GROUP, purge_once
from services.trajectory.service_layer import handlers as service
from services.trajectory.settings import TrajectorySettings
from shared import topics
from shared.bus import (
    Headers,
    Message,
    dead_letter_copy,
    handle_with_dead_letters,
    patiently,
)
from shared.bus_kafka import record_message
from shared.events import (
    AssessmentFailed,
    AssessmentRequested,
    Envelope,
    EventError,
    GapFlagged,
    decode,
)

logger = logging.getLogger(__name__)

APP_ID = "xianjie-trajectory"
FEEDS = (topics.PLATFORM_EVENTS, topics.GPS)


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


class BrokerAway(Exception):
    """The broker did not say where the feed partitions end within ``gap_sync_max_s``."""


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
    _admin: Any = None  # one admin client, for the feed partitions' ends and the groups' commits

    def __post_init__(self) -> None:
        self.tracker = GapTracker(self.params)

    def group_of(self, topic: str) -> str:
        """The consumer group that reads ``topic`` (what a dead letter names)."""
        return next((g for g, names in consumer_groups(self.settings.worker_group).items() if topic in names),
                    self.settings.worker_group)

    async def reject(self, m: Message, reason: str) -> None:
        self.stats["dead"] += 1
        await self.publisher.publish(topics.dead_letter(m.topic), m.key,
                                     *dead_letter_copy(m, reason, self.group_of(m.topic)))

    async def _safely(self, batch: Sequence[Message], handler: Any) -> None:
        """The batch; if it raises, message by message, dead-lettering the ones that still fail."""
        group = self.group_of(batch[0].topic) if batch else self.settings.worker_group
        await handle_with_dead_letters(self.publisher, batch, handler, group)  # type: ignore[arg-type]

    async def feeds(self, batch: Sequence[Message]) -> None:
        async def handle(msgs: Sequence[Message]) -> None:
            await service.handle_feed_batch(self.store, msgs, tz=self.settings.timezone, reject=self.reject,
                                            scope=self.settings.worker_group)
            if msgs and msgs[0].topic == topics.PLATFORM_EVENTS:
                await self._track(msgs)

        await self._safely(batch, handle)
        self.stats["feeds"] += len(batch)

    async def requests(self, batch: Sequence[Message]) -> None:
        try:
            lag = await self.feeds_stored()  # everything the broker accepted before the request is evidence
        except BrokerAway as e:
            await self._not_yet(batch, {}, why=str(e))
            return
        if lag:
            await self._not_yet(batch, lag)
            return

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
            try:
                await self.feeds_stored((topics.GPS,))  # the pings on the broker by now are the gap's evidence
            except BrokerAway as e:  # not judged on what may be partial: recorded, the sweep flags it later
                logger.warning("the gap of %s from %.3f left to the sweep: %s", c.rider_id, c.start, e)
                continue
            try:
                mine = await asyncio.to_thread(self.store.claim_gap, c.rider_id, c.start,
                                               lease_s=self.settings.gap_lease_s)
            except Exception:  # the database away: the sweep flags it later
                logger.warning("could not claim the gap of %s from %.3f; left to the sweep", c.rider_id, c.start)
                continue
            if mine:
                await self.flag(c)

    @property
    def admin(self) -> Any:
        if self._admin is None:
            from confluent_kafka.admin import AdminClient

            self._admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap})
        return self._admin

    def feed_ends(self, names: Sequence[str] = FEEDS) -> dict[tuple[str, int], int]:
        """Each feed partition's end now (the offset its next record will get), in one request."""
        from confluent_kafka import TopicPartition
        from confluent_kafka.admin import OffsetSpec

        meta = self.admin.list_topics(timeout=10)
        tps = [TopicPartition(n, p) for n in names if n in meta.topics for p in meta.topics[n].partitions]
        if not tps:
            return {}
        got = self.admin.list_offsets({tp: OffsetSpec.latest() for tp in tps}, request_timeout=10)
        return {(tp.topic, tp.partition): int(f.result().offset) for tp, f in got.items()}

    async def feeds_stored(self, names: Sequence[str] = FEEDS) -> dict[tuple[str, int], int]:
        """Wait until every record the broker held in the feed topics when this was called is
        stored (or refused) by whichever worker reads its partition: the store records, in each
        batch's own transaction, how far in its partition the batch reaches. Exact with any
        number of workers; no settle time. Gives up after ``gap_sync_max_s`` with the partitions
        still behind and by how many records (empty: all stored)."""
        began = time.monotonic()
        deadline, asked = began + self.settings.gap_sync_max_s, -1.0
        while True:  # the broker away: asked again until the deadline, then BrokerAway
            try:
                ends = await asyncio.to_thread(self.feed_ends, names)
                break
            except Exception as e:
                if time.monotonic() >= deadline:
                    raise BrokerAway(f"the broker did not answer for {self.settings.gap_sync_max_s:.0f} s "
                                     f"({str(e)[:200]}); request the evidence again") from e
                await asyncio.sleep(0.5)
        while True:
            lag = await asyncio.to_thread(self.store.lagging, self.settings.worker_group, ends)
            if lag and time.monotonic() - asked >= 0.5:  # a partition its group committed past was handled
                asked = time.monotonic()              # (or deliberately skipped when the group began at the end)
                try:
                    committed = await asyncio.to_thread(self.committed, list(lag))
                except Exception as e:  # the broker away: the stored progress alone is waited for
                    logger.info("the groups' commits not read (%s)", str(e)[:200])
                    committed = {}
                ends = {tp: e for tp, e in ends.items() if committed.get(tp, -1) < e}
                lag = {tp: n for tp, n in lag.items() if tp in ends}
            if not lag or time.monotonic() >= deadline:
                if lag:
                    logger.warning("feeds still not stored after %.0f s: %s", self.settings.gap_sync_max_s, lag)
                return lag
            await asyncio.sleep(0.05)

    def committed(self, tps: Sequence[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The offsets the worker's consumer groups have committed for these partitions: records
        before them were handled by a worker of this deployment, or skipped when the group was set
        to start at the end (so stored progress alone would wait for them forever)."""
        from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

        admin = self.admin
        out: dict[tuple[str, int], int] = {}
        for group, names in consumer_groups(self.settings.worker_group).items():
            mine = [TopicPartition(t, p) for t, p in tps if t in names]
            if not mine:
                continue
            got = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, mine)])[group].result(10)
            out.update({(tp.topic, tp.partition): int(tp.offset) for tp in got.topic_partitions if tp.offset >= 0})
        return out

    async def _not_yet(self, batch: Sequence[Message], lag: dict[tuple[str, int], int], why: str = "") -> None:
        """Answer requests that came while the feeds were further behind than a request may wait
        (or the broker could not say how far they reach): failed, saying why and that asking again
        will do (nothing is kept: a new request is answered afresh)."""
        behind = sum(lag.values())
        reason = why or (f"the rider's feeds are still being stored ({behind} records behind in {len(lag)} "
                         f"partitions after {self.settings.gap_sync_max_s:.0f} s); request the evidence again")
        for m in batch:
            try:
                req = decode(Envelope.from_bytes(m.value))
            except EventError as e:
                await self.reject(m, str(e)[:500])
                continue
            if isinstance(req, AssessmentRequested):
                ev = AssessmentFailed(request_id=req.request_id, case_id=req.case_id, reason=reason)
                await self.publisher.publish(topics.ASSESSMENT_READY, req.case_id,
                                             ev.envelope(key=req.case_id, producer=service.PRODUCER).to_bytes())

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
        self.group = next(g for g, names in consumer_groups(self.settings.worker_group).items() if topics.GPS in names)

    def _consumer(self, loop: asyncio.AbstractEventLoop) -> Any:
        from confluent_kafka import Consumer

        def revoked(_consumer: Any, _partitions: Any) -> None:  # called in the thread polling; must not raise
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
        consumer.subscribe([topics.GPS], on_revoke=revoked, on_lost=revoked)
        return consumer

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        consumer = await asyncio.to_thread(self._consumer, loop)
        poll: asyncio.Future[list[Any]] | None = None
        try:
            while True:
                poll = asyncio.ensure_future(asyncio.to_thread(
                    consumer.consume, self.settings.gps_batch, self.settings.feed_within_s))
                records = await asyncio.shield(poll)
                if records:
                    await self._take(consumer, records)
        finally:
            with contextlib.suppress(Exception):
                if poll is not None:
                    await asyncio.wait_for(poll, 30)  # librdkafka's consumer is not to be closed mid-poll
                await self.drain()
            await asyncio.to_thread(consumer.close)

    async def _take(self, consumer: Any, records: list[Any]) -> None:
        """Parse a batch (while the one before is being stored), then hand it to the store."""
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
        self._inflight = asyncio.create_task(self._store(consumer, good, gps, offsets))

    async def drain(self) -> None:
        """Wait for the batch in flight (stored and its offsets sent to be committed)."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    async def _store(self, consumer: Any, records: list[Any], gps: Any, offsets: dict[tuple[str, int], int]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        scope = self.settings.worker_group
        try:  # the database away: waited for, nothing more read meanwhile
            await patiently(f"storing {len(records)} pings", lambda: asyncio.to_thread(
                self.worker.store.add, gps=gps, progress=offsets, scope=scope))
        except Exception:  # something in the batch the database refuses: find it, message by message
            logger.warning("a batch of %d pings failed; storing them one by one", len(records), exc_info=True)
            await self.worker.feeds([record_message(r) for r in records])
            await patiently("recording the pings' positions",
                            lambda: asyncio.to_thread(self.worker.store.advance, scope, offsets))
        self.worker.stats["feeds"] += len(records)
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
    from services.trajectory.adapters.store import open_store
    from services.trajectory.entrypoints.replay import ensure_topics
    from shared.db import engine_for

    settings = settings or TrajectorySettings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # faust makes only the last level of its datadir
    consumed = (topics.PLATFORM_EVENTS, topics.GPS, topics.ASSESSMENT_REQUESTED)
    ensure_topics(settings.kafka_bootstrap, (*consumed, *map(topics.dead_letter, consumed), topics.ASSESSMENT_READY,
                                             topics.GAP_FLAGGED), settings.partitions)
    engine = engine_for(settings)
    store = open_store(engine)  # its tables brought up to date
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


__all__ = ["APP_ID", "BrokerAway", "GROUP", "FaustPublisher", "PingConsumer", "consumer_groups", "Worker", "gap_envelope", "make_app", "run_worker", "to_message"]
