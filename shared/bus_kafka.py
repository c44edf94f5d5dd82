"""The bus port on Apache Kafka (aiokafka).

Keeps the semantics written at the top of ``shared/bus.py``, the way Kafka gives them:
- a message's key (utf-8) picks its partition, so one key's messages stay in order;
- every consumer group has its own committed offsets, so every group sees every message; each
  ``subscribe`` call is one consumer, so two subscriptions in one group split the partitions;
- offsets are committed only after the handler returned (``enable_auto_commit=False``): a
  consumer that dies mid-batch leaves its batch to whoever gets the partition next;
- a message the handler cannot take goes to ``<topic>.dlq`` through
  :func:`shared.bus.handle_with_dead_letters`, the same code the in-process adapter runs.

Rebalances: a consumer finishes (and commits) the batch in hand before it gives its partitions
up, so in the normal case no message is handled twice. The producer is idempotent with
``acks="all"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
)

from shared.bus import Handler, Headers, Message, handle_with_dead_letters

logger = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = 36
_POLL_MS = 500


@dataclass(eq=False)
class _Sub:
    topic: str
    group: str
    handler: Handler
    batch: int
    consumer: Any = None  # AIOKafkaConsumer while the bus runs
    task: asyncio.Task[None] | None = None
    closing: asyncio.Future[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # held while a batch is in hand


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Let the batch in hand finish and commit before the partitions go to another member."""

    def __init__(self, sub: _Sub) -> None:
        self.sub = sub

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self.sub.lock:  # the rebalance waits here for the batch in hand
            pass

    async def on_partitions_assigned(self, assigned: Any) -> None:
        logger.info("%s for %s: assigned partitions %s", self.sub.topic, self.sub.group,
                    sorted(tp.partition for tp in assigned))


def record_message(record: Any) -> Message:
    """A record consumed from Kafka (aiokafka's ``ConsumerRecord`` or confluent-kafka's
    ``Message``, whose fields are methods) as a :class:`Message`; a key that is not UTF-8 is read
    with replacement characters (the message must still reach its handler or the dead letters)."""
    if callable(record.value):  # confluent-kafka
        topic, raw_key, value, headers = record.topic(), record.key(), record.value(), record.headers()
        partition, offset = record.partition(), record.offset()
    else:
        topic, raw_key, value, headers = record.topic, record.key, record.value, record.headers
        partition, offset = record.partition, record.offset
    key = raw_key.decode(errors="replace") if raw_key is not None else ""
    return Message(topic, key, value if value is not None else b"",
                   tuple((k, bytes(v) if v is not None else b"") for k, v in headers or ()), partition, offset)


class KafkaBus:
    """The bus on a Kafka cluster. Topics are created on first use with ``partitions``
    partitions (subscribed topics on :meth:`start`, published ones on first publish)."""

    def __init__(
        self,
        bootstrap: str = "127.0.0.1:9092",
        *,
        partitions: int = 6,
        replication_factor: int = 1,
        client_id: str = "xianjie",
        start_timeout: float = 30.0,
        consumer_options: Mapping[str, Any] | None = None,
        producer_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.replication_factor = replication_factor
        self.client_id = client_id
        self.start_timeout = start_timeout
        self.consumer_options: dict[str, Any] = {
            "heartbeat_interval_ms": 1000,  # members notice a rebalance within a second
            "session_timeout_ms": 10000,
            **(consumer_options or {}),
        }
        self.producer_options = dict(producer_options or {})
        self._subs: list[_Sub] = []
        self._topics: dict[str, frozenset[int]] = {}  # known to exist, with their partitions
        self._topics_lock: asyncio.Lock | None = None
        self._producer: Any = None
        self._admin: Any = None
        self._offsets: Any = None  # a group-less consumer that reads end offsets for drain()
        self._running = False
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._running:
            return
        self._stopping = False
        self._topics_lock = asyncio.Lock()
        try:
            self._admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap,
                                              client_id=f"{self.client_id}-admin")
            await self._admin.start()
            self._producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, client_id=self.client_id,
                enable_idempotence=True, acks="all", **self.producer_options)
            await self._producer.start()
            self._offsets = AIOKafkaConsumer(bootstrap_servers=self.bootstrap,
                                             client_id=f"{self.client_id}-offsets",
                                             enable_auto_commit=False)
            await self._offsets.start()
            await self._ensure_topics({s.topic for s in self._subs})
            self._running = True
            # Start the members together so that a group forms in one round, not one per member;
            # let every start settle before stop() closes them on a failure.
            results = await asyncio.gather(*(self._start_consumer(s) for s in self._subs),
                                           return_exceptions=True)
            failed = next((r for r in results if isinstance(r, BaseException)), None)
            if failed is not None:
                raise failed
        except BaseException:
            await self.stop()
            raise
        for s in self._subs:
            s.task = asyncio.create_task(self._run(s), name=f"kafkabus:{s.topic}:{s.group}")
        await self._wait_balanced()

    async def stop(self) -> None:
        """Stop consuming (uncommitted batches are left for the next member), then close."""
        self._stopping = True
        self._running = False
        tasks = [s.task for s in self._subs if s.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for s in self._subs:
            s.task = None
        await asyncio.gather(*(self._close_consumer(s) for s in self._subs))
        for name in ("_offsets", "_producer"):
            client = getattr(self, name)
            setattr(self, name, None)
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        if self._admin is not None:
            admin, self._admin = self._admin, None
            with contextlib.suppress(Exception):
                await admin.close()
        self._topics.clear()

    # -- producing ---------------------------------------------------------------------------

    async def publish(self, topic: str, key: str, value: bytes, headers: Headers = ()) -> None:
        await self.publish_many(topic, [(key, value)], headers)

    async def publish_many(self, topic: str, items: Sequence[tuple[str, bytes]],
                           headers: Headers = ()) -> None:
        """Send all, then wait for every acknowledgement (``acks="all"``)."""
        if self._producer is None:
            raise RuntimeError("KafkaBus.publish before start()")
        if not items:
            return
        await self._ensure_topics({topic})
        hdrs = list(headers) or None
        sent = [await self._producer.send(topic, value, key=key.encode(), headers=hdrs)
                for key, value in items]
        await asyncio.gather(*sent)

    # -- consuming ---------------------------------------------------------------------------

    def subscribe(self, topic: str, group: str, handler: Handler, *, batch: int = 500) -> None:
        """One consumer in ``group``; a second call with the same group adds a second member,
        and the group's partitions are split between them."""
        sub = _Sub(topic, group, handler, batch)
        self._subs.append(sub)
        if self._running:  # joins while the bus runs: start in the background
            sub.task = asyncio.create_task(self._run(sub, start=True),
                                           name=f"kafkabus:{topic}:{group}")

    async def _start_consumer(self, sub: _Sub) -> None:
        sub.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, client_id=f"{self.client_id}-{sub.group}",
            group_id=sub.group, enable_auto_commit=False, auto_offset_reset="earliest",
            **self.consumer_options)
        sub.consumer.subscribe([sub.topic], listener=_Rebalance(sub))
        await sub.consumer.start()

    async def _close_consumer(self, sub: _Sub) -> None:
        """Leave the group (committing nothing). Shielded: a close cut short by a cancellation
        would not leave the group, and the group would wait a session timeout for the member."""
        if sub.consumer is not None:
            consumer, sub.consumer = sub.consumer, None
            sub.closing = asyncio.ensure_future(self._stop_consumer(sub, consumer))
        if sub.closing is not None:
            await asyncio.shield(sub.closing)
            sub.closing = None

    @staticmethod
    async def _stop_consumer(sub: _Sub, consumer: Any) -> None:
        try:
            await consumer.stop()
        except Exception:
            logger.exception("closing the consumer of %s for %s", sub.topic, sub.group)

    async def _run(self, sub: _Sub, *, start: bool = False) -> None:
        try:
            if start:
                await self._ensure_topics({sub.topic})
                await self._start_consumer(sub)
            await self._consume(sub)
        except asyncio.CancelledError:
            if not self._stopping:  # the handler itself raised it
                logger.error("consumer of %s for %s was cancelled; its batch in hand will be "
                             "delivered again", sub.topic, sub.group)
            raise
        except Exception:
            logger.exception("consumer of %s for %s died; its batch in hand will be delivered "
                             "again", sub.topic, sub.group)
            raise
        finally:
            if not self._stopping:  # leave the group so the partitions move to a live member
                await self._close_consumer(sub)

    async def _consume(self, sub: _Sub) -> None:
        consumer = sub.consumer
        while True:
            try:
                fetched = await consumer.getmany(timeout_ms=_POLL_MS, max_records=sub.batch)
            except KafkaConnectionError as e:
                logger.warning("fetch from %s for %s failed: %s; retrying", sub.topic, sub.group, e)
                await asyncio.sleep(1.0)
                continue
            if not fetched:
                continue
            # aiokafka returns no records while a rebalance is in progress, and nothing awaits
            # between here and taking the lock: these records are ours until the commit.
            async with sub.lock:
                batch = [record_message(r) for tp in sorted(fetched) for r in fetched[tp]]
                await handle_with_dead_letters(self, batch, sub.handler, sub.group)
                offsets = {tp: records[-1].offset + 1 for tp, records in fetched.items()}
                try:
                    await consumer.commit(offsets)
                except (CommitFailedError, IllegalStateError) as e:
                    # the group moved on while we handled: the new owner will see these again
                    logger.warning("commit on %s for %s failed after a rebalance: %s",
                                   sub.topic, sub.group, e)

    async def _wait_balanced(self) -> None:
        """Wait until each group's members hold disjoint shares that cover all its partitions
        (every member holding one, where there are enough partitions)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.start_timeout
        while True:
            unbalanced = [k for k in {(s.topic, s.group) for s in self._subs}
                          if not self._balanced(*k)]
            if not unbalanced:
                return
            if loop.time() > deadline:
                logger.warning("consumer groups not balanced after %.0fs: %s",
                               self.start_timeout, unbalanced)
                return
            await asyncio.sleep(0.05)

    def _balanced(self, topic: str, group: str) -> bool:
        members = [s for s in self._subs if s.topic == topic and s.group == group]
        if any(s.consumer is None or s.task is None or s.task.done() for s in members):
            return True  # a dead member is not waited for
        shares = [{tp.partition for tp in s.consumer.assignment()} for s in members]
        every = self._topics.get(topic)
        if not every:
            return False
        if sum(map(len, shares)) != len(every) or set().union(*shares) != every:
            return False
        return all(shares) or len(members) > len(every)

    # -- topics and offsets --------------------------------------------------------------------

    async def _ensure_topics(self, topics: set[str]) -> None:
        missing = topics.difference(self._topics)
        if not missing:
            return
        assert self._topics_lock is not None and self._admin is not None
        async with self._topics_lock:
            missing = topics.difference(self._topics)
            if not missing:
                return
            resp = await self._admin.create_topics(
                [NewTopic(t, self.partitions, self.replication_factor) for t in sorted(missing)])
            for name, code, *rest in resp.topic_errors:
                if code not in (0, _TOPIC_ALREADY_EXISTS):
                    raise KafkaError(f"creating topic {name}: error {code} {rest[:1]}")
            for t in missing:  # also fills the producer's metadata, so the first send is quick
                self._topics[t] = frozenset(await self._producer.partitions_for(t))

    async def lag(self) -> dict[tuple[str, str], int]:
        """Messages published but not yet committed, per (topic, group) subscribed here."""
        if self._producer is None:
            raise RuntimeError("KafkaBus.lag before start()")
        out: dict[tuple[str, str], int] = {}
        by_topic: dict[str, set[str]] = {}
        for s in self._subs:
            by_topic.setdefault(s.topic, set()).add(s.group)
        for topic, groups in by_topic.items():
            await self._ensure_topics({topic})
            tps = [TopicPartition(topic, p) for p in sorted(self._topics[topic])]
            ends = await self._offsets.end_offsets(tps)
            for group in groups:
                done = await self._admin.list_consumer_group_offsets(group, partitions=tps)
                out[(topic, group)] = sum(
                    max(0, ends[tp] - max(0, done[tp].offset if tp in done else 0)) for tp in tps)
        return out

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every subscribed group's committed offsets reach its topic's end offsets."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            behind = {k: n for k, n in (await self.lag()).items() if n}
            if not behind:
                return
            if loop.time() > deadline:
                raise TimeoutError(f"bus not drained after {timeout}s; messages behind: {behind}")
            await asyncio.sleep(0.05)
