"""``make bench-kafka``: the trajectory worker on a real Kafka and PostgreSQL.

1. Throughput. A simulated day (``simulate --preset clean``, riders enough for ``--pings``) is
   produced into ``rider.gps``; then, in the same run and on the same core (the machine's last), a
   bare aiokafka consumer reads exactly those records (no parsing, no storing), and one
   ``python -m services.trajectory worker`` process (pinned there with ``taskset``) consumes them from a consumer group
   started where they begin. Its rate is the stored pings (the fixes in ``trajectory_gps_chunk``)
   over the time from the first to the last stored.
2. Latency. For ``--gaps`` probe riders (the seed case's feeds under new rider ids) the worker
   has the morning stored; then the ``delivered`` event of the first order is produced together
   with the next order's events, and the time until the matching ``GapFlagged`` arrives on
   ``trajectory.gap-flagged`` is taken (includes ``XJ_GAP_SETTLE_S``, 0.5 s by default).

Needs the broker (``make kafka-up``) and PostgreSQL (``bash deploy/postgres/pg.sh up``); the
database is a fresh one, dropped afterwards. The produced records are deleted from the topics at
the end (``--keep`` to leave them) so that later consumers starting at the beginning do not read them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "tests" / "data" / "scenarios" / "seed-case-between"
PINGS_PER_RIDER = 7750  # a clean simulated rider-day


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def end_offsets(bootstrap: str, topic: str) -> dict[tuple[str, int], int]:
    """Each partition's end now, by (topic, partition)."""
    from confluent_kafka import KafkaException, TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 4})
    meta = admin.list_topics(timeout=30).topics.get(topic)
    tps = [TopicPartition(topic, p) for p in sorted(meta.partitions)] if meta is not None else []
    if not tps:
        return {}
    for attempt in range(50):  # a topic just created: its leader may not be known for a moment
        try:
            got = admin.list_offsets({tp: OffsetSpec.latest() for tp in tps}, request_timeout=30)
            return {(tp.topic, tp.partition): int(f.result().offset) for tp, f in got.items()}
        except KafkaException:
            if attempt == 49:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def commit_group(bootstrap: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        if offsets:
            c.commit(offsets=[TopicPartition(t, p, off) for (t, p), off in offsets.items()], asynchronous=False)
    finally:
        c.close()


def producer(bootstrap: str, **extra: object) -> Any:
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "partitioner": "murmur2_random",
                     "log_level": 4, **extra})


def produce(bootstrap: str, items: list[tuple[str, str, bytes]]) -> float:
    p = producer(bootstrap, **{"linger.ms": 20, "batch.size": 512 * 1024})
    t0 = time.perf_counter()
    for topic, key, value in items:
        while True:
            try:
                p.produce(topic, value=value, key=key.encode())
                break
            except BufferError:  # librdkafka's local queue is full: let it drain
                p.poll(0.05)
        p.poll(0)
    left = p.flush(120)
    took = time.perf_counter() - t0
    p.close()
    if left:
        raise SystemExit(f"{left} records not delivered")
    return took


async def bare(bootstrap: str, start: dict, end: dict) -> tuple[int, float]:
    """A group-less aiokafka consumer reading [start, end) of every partition: records, seconds."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=4 << 20)
    await c.start()
    try:
        tps = [TopicPartition(t, p) for t, p in start]
        c.assign(tps)
        for tp, old in zip(tps, start, strict=True):
            c.seek(tp, start[old])
        want = {tp: end[old] for tp, old in zip(tps, start, strict=True)}
        first = {tp: start[old] for tp, old in zip(tps, start, strict=True)}
        n, t0, done = 0, None, {tp for tp in tps if want[tp] <= first[tp]}
        while len(done) < len(tps):
            got = await c.getmany(timeout_ms=500, max_records=20_000)  # the worker's batch
            if got and t0 is None:
                t0 = time.perf_counter()
            for tp, recs in got.items():
                n += len(recs)
                if recs[-1].offset + 1 >= want[tp]:
                    done.add(tp)
        return n, time.perf_counter() - (t0 or time.perf_counter())
    finally:
        await c.stop()


def count(engine: sa.Engine) -> int:
    """Fixes stored (each produced once here, so the chunks' sizes add up to the distinct fixes)."""
    with engine.connect() as c:
        return int(c.execute(sa.text("SELECT COALESCE(SUM(n), 0) FROM trajectory_gps_chunk")).scalar() or 0)


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.kafka")
    ap.add_argument("--pings", type=int, default=1_000_000)
    ap.add_argument("--gaps", type=int, default=40)
    ap.add_argument("--bootstrap", default=os.environ.get("XJ_KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    ap.add_argument("--database", default=os.environ.get("XJ_TEST_DATABASE_URL"),
                    help="a PostgreSQL server URL (default XJ_TEST_DATABASE_URL, else deploy/postgres/pg.sh url)")
    ap.add_argument("--keep", action="store_true", help="leave the produced records in the topics")
    args = ap.parse_args(argv)

    from services.trajectory.entrypoints.replay import ensure_topics
    from services.trajectory.entrypoints.stream import consumer_groups
    from shared import topics

    base_url = args.database or subprocess.run(["bash", str(ROOT / "deploy/postgres/pg.sh"), "url"],
                                               capture_output=True, text=True, check=True).stdout.strip()
    admin_engine = sa.create_engine(sa.make_url(base_url), isolation_level="AUTOCOMMIT")
    dbname = f"xj_bench_{uuid.uuid4().hex[:8]}"
    with admin_engine.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{dbname}"'))
    url = sa.make_url(base_url).set(database=dbname).render_as_string(hide_password=False)
    tmp = Path(tempfile.mkdtemp(prefix="xj-bench-kafka-"))
    group = f"xj-bench-{uuid.uuid4().hex[:8]}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("XJ_")}, "XJ_DATABASE_URL": url,
           "XJ_DATA_DIR": str(tmp / "var"), "XJ_KAFKA_BOOTSTRAP": args.bootstrap, "XJ_WORKER_GROUP": group}
    feeds = (topics.PLATFORM_EVENTS, topics.GPS)
    consumed = (*feeds, topics.ASSESSMENT_REQUESTED)
    worker = None
    engine = sa.create_engine(url)
    rows: list[tuple[str, str]] = []
    starts: dict[str, dict] = {}
    try:
        ensure_topics(args.bootstrap, (*consumed, *map(topics.dead_letter, consumed), topics.ASSESSMENT_READY,
                                       topics.GAP_FLAGGED), 6)
        riders = max(1, math.ceil(args.pings / PINGS_PER_RIDER))
        day = tmp / "day"
        subprocess.run([sys.executable, "-m", "tests.support.simulate", str(day), "--riders", str(riders),
                        "--preset", "clean", "--seed", "11"], cwd=ROOT, env=env, check=True, capture_output=True)
        lines = [x for x in (day / "gps.jsonl").read_bytes().splitlines() if x.strip()][: args.pings]
        items = [(topics.GPS, orjson.loads(x)["rider_id"], x) for x in lines]
        subprocess.run([sys.executable, "-c", "from services.bootstrap import database; from shared.config import "
                        "Settings; database(Settings(), ('trajectory',)).dispose()"], cwd=ROOT, env=env, check=True)
        for t in (*feeds, topics.GAP_FLAGGED):
            starts[t] = end_offsets(args.bootstrap, t)
        for g, names in consumer_groups(group).items():  # each of the worker's groups starts here
            commit_group(args.bootstrap, g, {tp: off for t in names for tp, off in
                                             (starts.get(t) or end_offsets(args.bootstrap, t)).items()})
        took = produce(args.bootstrap, items)
        log(f"produced {len(items)} pings of {riders} simulated riders in {took:.1f} s ({len(items) / took:,.0f}/s)")
        ends = end_offsets(args.bootstrap, topics.GPS)
        produced = len(items)
        del items, lines  # a million live objects slow every garbage collection of the bare consumer
        gc.collect()

        core = (os.cpu_count() or 1) - 1  # the bare consumer and the worker on the same core
        everywhere = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {core})
        try:
            n_bare, t_bare = asyncio.run(bare(args.bootstrap, starts[topics.GPS], ends))
        finally:
            os.sched_setaffinity(0, everywhere)
        bare_rate = n_bare / t_bare
        log(f"bare aiokafka consumer (core {core}): {n_bare} records in {t_bare:.2f} s")

        pin = ["taskset", "-c", str(core)] if shutil.which("taskset") else []
        out = (tmp / "worker.log").open("wb")
        worker = subprocess.Popen([*pin, sys.executable, "-m", "services.trajectory", "worker"], cwd=ROOT, env=env,
                                  stdout=out, stderr=subprocess.STDOUT)
        out.close()
        first = last = None
        stored = prev = at_first = 0
        deadline = time.monotonic() + 600
        still_since = time.monotonic()
        while time.monotonic() < deadline:
            stored = count(engine)
            now = time.perf_counter()
            if stored and first is None:
                first, at_first = now, stored  # rows already stored when first seen are not timed
            if stored != prev:
                last, prev, still_since = now, stored, time.monotonic()
            if stored >= produced or (stored and time.monotonic() - still_since > 5):
                break
            if worker.poll() is not None:
                raise SystemExit(f"worker exited: {(tmp / 'worker.log').read_text()[-2000:]}")
            time.sleep(0.1)
        assert first is not None and last is not None and last > first, "the worker stored nothing"
        worker_rate = (stored - at_first) / (last - first)
        log(f"worker: {stored - at_first} pings stored in {last - first:.2f} s (after the first {at_first})")

        lat = latency(args.bootstrap, args.gaps, engine)
        rows = [
            ("pings produced", f"{produced:,} ({riders} simulated riders)"),
            ("bare aiokafka consumer", f"{bare_rate:,.0f} records/s"),
            (f"trajectory worker (1 process{', 1 core' if pin else ''})",
             f"{worker_rate:,.0f} pings/s stored ({stored:,} pings)"),
            ("worker / bare", f"{worker_rate / bare_rate:.2f} (target >= 0.5)"),
            (f"delivered -> GapFlagged, {len(lat)} gaps", f"p50 {pct(lat, 50) * 1000:.0f} ms, "
                                                          f"p99 {pct(lat, 99) * 1000:.0f} ms"),
        ]
        w = max(len(a) for a, _ in rows)
        print(f"{'measure':<{w}}  figure\n{'-' * w}  {'-' * 40}")
        for a, b in rows:
            print(f"{a:<{w}}  {b}")
        return 0
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(20)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        engine.dispose()
        with admin_engine.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        admin_engine.dispose()
        if not args.keep and starts:
            delete_produced(args.bootstrap, [t for t in starts if t != topics.GAP_FLAGGED])
        shutil.rmtree(tmp, ignore_errors=True)


def delete_produced(bootstrap: str, names: list[str]) -> None:
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "client.id": "xj-bench", "log_level": 4})
    try:
        for t in names:
            tps = [TopicPartition(tt, p, off) for (tt, p), off in end_offsets(bootstrap, t).items()]
            for f in (admin.delete_records(tps, operation_timeout=30) if tps else {}).values():
                f.result()
    except Exception as e:  # the records stay; consumers that start at the end are not affected
        log(f"could not delete the bench's records: {e}")


def latency(bootstrap: str, n: int, engine: sa.Engine) -> list[float]:
    """Seconds from producing a ``delivered`` (with the next order's events) to its GapFlagged."""
    from confluent_kafka import Consumer, TopicPartition

    from shared import topics

    seed = [orjson.loads(x) for x in (SEED / "platform.jsonl").read_bytes().splitlines() if x.strip()]
    gps = [x for x in (SEED / "gps.jsonl").read_bytes().splitlines() if x.strip()]
    run = uuid.uuid4().hex[:6]
    riders = [f"BENCH-{run}-{k:03d}" for k in range(n)]
    split = next(i for i, e in enumerate(seed) if e["type"] == "delivered")  # the first order's delivery

    def events(r: str, part: list[dict]) -> list[tuple[str, str, bytes]]:
        return [(topics.PLATFORM_EVENTS, r, orjson.dumps({**e, "rider_id": r, "event_id": f"{r}-{e['event_id']}"}))
                for e in part]

    warm: list[tuple[str, str, bytes]] = []
    for r in riders:
        warm += [(topics.GPS, r, x.replace(b"R-LIMING", r.encode())) for x in gps]
        warm += events(r, seed[:split])
    before = count(engine)
    produce(bootstrap, warm)
    want = before + len(riders) * 900
    deadline = time.monotonic() + 120
    while count(engine) < want and time.monotonic() < deadline:
        time.sleep(0.1)

    flagged: dict[str, float] = {}
    stop = threading.Event()
    # group.id: librdkafka wants one; never used, as nothing is subscribed or committed
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"xj-bench-latency-{run}", "enable.auto.commit": False,
                  "log_level": 4})
    c.assign([TopicPartition(t, p, off) for (t, p), off in end_offsets(bootstrap, topics.GAP_FLAGGED).items()])

    def listen() -> None:
        while not stop.is_set():
            recs = c.consume(1000, 0.1)
            now = time.time()
            for m in recs:
                if m.error() is not None:
                    continue
                k = m.key().decode() if m.key() else ""
                if k in sent and k not in flagged:
                    flagged[k] = now

    sent: dict[str, float] = {}
    t = threading.Thread(target=listen, daemon=True)
    t.start()
    p = producer(bootstrap, **{"linger.ms": 0})
    try:
        for r in riders:  # the delivery, the next order's accept and arrival (time moves on past the accept)
            sent[r] = time.time()
            for topic, key, value in events(r, seed[split:split + 3]):
                p.produce(topic, key=key.encode(), value=value)
            p.flush(30)
            time.sleep(0.1)
        deadline = time.monotonic() + 60
        while len(flagged) < len(riders) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        t.join(5)
        c.close()
        p.close()
    if len(flagged) < len(riders):
        log(f"latency: {len(riders) - len(flagged)} of {len(riders)} gaps not flagged within 60 s")
    return [flagged[r] - sent[r] for r in riders if r in flagged]


if __name__ == "__main__":
    sys.exit(main())
