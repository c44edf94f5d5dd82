"""``python -m services.trajectory replay DIR --speedup N``: a scenario's platform and GPS lines into
Kafka, in timestamp order, as the raw contract JSON keyed by ``rider_id`` (confluent-kafka,
``acks=all``, idempotent, the Java clients' murmur2 partitioner). With ``--speedup N`` the gaps between lines are slept N times faster than they
happened; 0 sends as fast as the broker takes them. Counts go to standard error.

Lines that cannot be read (not JSON, no ``rider_id``, no time) are still sent, at the position of
the last good line, so that the worker's dead-letter path sees them as production would.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from shared import topics
from shared.config import Settings
from shared.timeutil import parse_one

FEEDS = (("platform.jsonl", topics.PLATFORM_EVENTS), ("gps.jsonl", topics.GPS))


def lines(directory: Path, tz: str) -> list[tuple[float, int, str, str, bytes]]:
    """(time, sequence, topic, key, raw line) of both feeds, sorted by time (file order on ties)."""
    out: list[tuple[float, int, str, str, bytes]] = []
    seq = 0
    for name, topic in FEEDS:
        path = directory / name
        if not path.exists():
            continue
        last = float("-inf")
        for raw in path.read_bytes().splitlines():
            raw = raw.strip()
            if not raw:
                continue
            key, t = _key_time(raw, tz)
            t = last if t is None else t
            last = t
            out.append((t, seq, topic, key, raw))
            seq += 1
    out.sort(key=lambda x: (x[0], x[1]))
    return out


def _key_time(raw: bytes, tz: str) -> tuple[str, float | None]:
    try:
        obj = orjson.loads(raw)
        key = str(obj.get("rider_id") or "") if isinstance(obj, dict) else ""
        return key, parse_one(obj["ts"], tz)
    except Exception:
        return "", None


def paced(items: list[tuple[float, int, str, str, bytes]], speedup: float) -> Iterator[tuple[str, str, bytes]]:
    if not items:
        return
    t0 = next((t for t, *_ in items if t != float("-inf")), 0.0)
    start = time.monotonic()
    for t, _, topic, key, raw in items:
        if speedup > 0 and t != float("-inf"):
            delay = (t - t0) / speedup - (time.monotonic() - start)
            if delay > 0:
                time.sleep(delay)
        yield topic, key, raw


def ensure_topics(bootstrap: str, names: list[str] | tuple[str, ...], partitions: int = 6,
                  replication_factor: int = 1) -> None:
    """Create the topics that do not exist yet with ``partitions`` partitions (a broker would
    auto-create them with one, and faust subscribes only to topics that exist). A topic created
    meanwhile by someone else (``TOPIC_ALREADY_EXISTS``) is fine."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "client.id": "xianjie-topics"})
    existing = set(admin.list_topics(timeout=30).topics)
    missing = [n for n in dict.fromkeys(names) if n not in existing]
    if not missing:
        return
    # operation_timeout: the broker answers once the topics have propagated, not merely been asked for
    futures = admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=replication_factor)
                                   for n in missing], operation_timeout=30, request_timeout=60)
    for future in futures.values():
        try:
            future.result()
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def main(directory: Path, *, speedup: float = 0.0, bootstrap: str | None = None, partitions: int = 6) -> int:
    from confluent_kafka import Producer

    settings = Settings()
    if not directory.is_dir():
        print(f"replay: {directory} is not a directory", file=sys.stderr)
        return 2
    items = lines(directory, settings.timezone)
    bootstrap = bootstrap or settings.kafka_bootstrap
    ensure_topics(bootstrap, [t for _, t in FEEDS], partitions)
    # idempotent: retried sends (a broker restart) are written once and in order; a record is
    # retried until the delivery timeout, and any that still fails is counted and reported.
    # murmur2: a rider's records go to the partition the Java clients and faust would choose.
    producer = Producer({"bootstrap.servers": bootstrap, "client.id": "xianjie-replay", "acks": "all",
                         "enable.idempotence": True, "partitioner": "murmur2_random", "linger.ms": 5,
                         "batch.size": 256 * 1024, "delivery.timeout.ms": 300_000})
    counts = {topic: 0 for _, topic in FEEDS}
    failed: list[object] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            failed.append(err)

    began = time.monotonic()
    left = 0
    try:
        for topic, key, raw in paced(items, speedup):
            send(producer, topic, key.encode(), raw, delivered)
            counts[topic] += 1
        left = producer.flush(330)  # every record delivered or failed within the delivery timeout
    finally:
        producer.close()
    took = time.monotonic() - began
    if failed or left:
        first = f" (first: {failed[0]!r})" if failed else ""
        print(f"replay: {len(failed) + left} records NOT delivered{first}", file=sys.stderr)
        return 1
    print(f"replay: {directory}: {counts[topics.PLATFORM_EVENTS]} platform events to {topics.PLATFORM_EVENTS}, "
          f"{counts[topics.GPS]} pings to {topics.GPS} in {took:.1f} s", file=sys.stderr)
    return 0


def send(producer: Any, topic: str, key: bytes, value: bytes, on_delivery: Any, max_block_s: float = 300.0) -> None:
    """Queue one record; while librdkafka's local queue is full, serve delivery reports and try
    again (for up to ``max_block_s``, as a blocking producer would wait for room)."""
    deadline = time.monotonic() + max_block_s
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
            break
        except BufferError:
            if time.monotonic() >= deadline:
                raise
            producer.poll(0.1)
    producer.poll(0)  # delivery reports of earlier records
