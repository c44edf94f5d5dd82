"""Helpers of the multi-process Kafka tests: services as OS processes (always stopped: SIGTERM,
then SIGKILL), consumer groups started at the topics' current end (so a shared development broker's
history is not replayed into a fresh database), reading a topic from given offsets (confluent-kafka), and a
local HTTP receiver for webhooks. Partitions are ``(topic, partition)`` pairs."""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    stopped: bool = False  # stopped (or killed) by the test on purpose

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@dataclass
class Procs:
    """Processes started by a test; :meth:`stop_all` ends every one that still runs."""

    log_dir: Path
    env: dict[str, str]
    running: list[Proc] = field(default_factory=list)

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> Proc:
        log = self.log_dir / f"{name}.log"
        out = log.open("wb")
        p = subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env={**self.env, **(env or {})},
                             stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()
        proc = Proc(name, p, log)
        self.running.append(proc)
        return proc

    def check_alive(self) -> None:
        """Raise if a process exited that the test did not stop itself."""
        for p in self.running:
            if p.popen.poll() is not None and not p.stopped:
                raise AssertionError(f"{p.name} exited with {p.popen.returncode}:\n{p.tail()}")

    @staticmethod
    def stop(p: Proc, grace: float = 15.0) -> int:
        p.stopped = True
        if p.popen.poll() is None:
            p.popen.send_signal(signal.SIGTERM)
            try:
                p.popen.wait(grace)
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait(10)
        return p.popen.returncode

    @staticmethod
    def kill(p: Proc) -> None:
        p.stopped = True
        p.popen.kill()
        p.popen.wait(10)

    def stop_all(self) -> None:
        for p in self.running:
            p.stopped = True
        for p in self.running:  # SIGTERM to all first: they shut down in parallel
            if p.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for p in self.running:
            try:
                p.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait(10)


@contextlib.contextmanager
def processes(log_dir: Path, env: dict[str, str]) -> Iterator[Procs]:
    procs = Procs(log_dir, env)
    try:
        yield procs
    finally:
        procs.stop_all()


Partition = tuple[str, int]


def _admin(bootstrap: str) -> AdminClient:
    # log_level 4: not librdkafka's notice, on each client's end, of events nobody waited for
    return AdminClient({"bootstrap.servers": bootstrap, "client.id": "xj-test", "log_level": 4})


# a topic just created whose leader the broker does not know yet; a group coordinator still loading
_TRANSIENT = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART,
              KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
              KafkaError.COORDINATOR_LOAD_IN_PROGRESS}


def _patiently(fn: Callable[[], Any], timeout: float = 30.0) -> Any:
    """``fn()``, again while it fails with a transient error (a topic just created, a coordinator
    still loading or moving, as on a fresh broker), as kafka-python's calls did by themselves."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except KafkaException as e:
            err = e.args[0]
            if not (err.retriable() or err.code() in _TRANSIENT) or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def _consumer(bootstrap: str, group: str | None = None) -> Consumer:
    """A consumer that never subscribes; librdkafka wants a ``group.id`` even so (a throwaway one
    is never sent to the broker unless offsets are committed or read)."""
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group or f"xj-test-{uuid.uuid4().hex[:8]}",
                     "enable.auto.commit": False, "enable.auto.offset.store": False})


def producer(bootstrap: str, config: dict[str, Any] | None = None) -> Producer:
    """A producer as the services' (``acks=all``; the Java clients' murmur2 partitioner), with
    librdkafka's ``config`` on top."""
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "partitioner": "murmur2_random", **(config or {})})


def flush(p: Producer, timeout: float = 30.0) -> None:
    """Wait until every record queued on ``p`` is acknowledged."""
    left = p.flush(timeout)
    assert left == 0, f"{left} records not delivered within {timeout:.0f} s"


def partitions(bootstrap: str, topic: str) -> list[Partition]:
    meta = _admin(bootstrap).list_topics(timeout=30)
    t = meta.topics.get(topic)
    return [(topic, p) for p in sorted(t.partitions)] if t is not None else []


def end_offsets(bootstrap: str, topic_names: Iterable[str]) -> dict[Partition, int]:
    """Each partition's end now (the offset its next record will get), in one request."""
    admin = _admin(bootstrap)
    meta = admin.list_topics(timeout=30)
    tps = [TopicPartition(t, p) for t in topic_names if t in meta.topics for p in sorted(meta.topics[t].partitions)]
    if not tps:
        return {}

    def ask() -> dict[Partition, int]:
        got = admin.list_offsets({tp: OffsetSpec.latest() for tp in tps}, request_timeout=30)
        return {(tp.topic, tp.partition): int(f.result().offset) for tp, f in got.items()}

    return _patiently(ask)


def start_group_at_end(bootstrap: str, group: str, topic_names: Iterable[str]) -> bool:
    """Commit ``group``'s offsets at the topics' current end, so its first member starts there and
    not at the broker's history. Refused by the broker (False) while the group has members."""
    ends = end_offsets(bootstrap, topic_names)
    if not ends:
        return True
    c = _consumer(bootstrap, group)
    offsets = [TopicPartition(t, p, off) for (t, p), off in ends.items()]
    try:
        got = _patiently(lambda: c.commit(offsets=offsets, asynchronous=False))
        return all(tp.error is None for tp in got or ())
    except KafkaException:
        return False
    finally:
        c.close()


def group_lag(bootstrap: str, group: str, topic_names: Iterable[str]) -> int:
    """Records of ``topic_names`` that ``group`` has not committed yet."""
    ends = end_offsets(bootstrap, topic_names)
    if not ends:
        return 0
    c = _consumer(bootstrap, group)
    try:
        committed = _patiently(lambda: c.committed([TopicPartition(t, p) for t, p in ends], timeout=30))
    finally:
        c.close()
    done = {(tp.topic, tp.partition): max(0, tp.offset) for tp in committed}  # none committed: OFFSET_INVALID
    return sum(max(0, end - done.get(tp, 0)) for tp, end in ends.items())


def worker_lag(bootstrap: str, worker_group: str, topic_names: Iterable[str] | None = None) -> int:
    """Records of ``topic_names`` (default: all the worker reads) its consumer groups have not committed."""
    from services.trajectory.entrypoints.stream import consumer_groups

    return sum(group_lag(bootstrap, group, [t for t in names if topic_names is None or t in topic_names])
               for group, names in consumer_groups(worker_group).items())


def start_worker_at_end(bootstrap: str, worker_group: str) -> bool:
    """:func:`start_group_at_end` for every consumer group of a trajectory worker."""
    from services.trajectory.entrypoints.stream import consumer_groups

    return all([start_group_at_end(bootstrap, g, ts) for g, ts in consumer_groups(worker_group).items()])


@dataclass(frozen=True)
class Record:
    """A consumed record with its fields as attributes (``shared.bus_kafka.record_message`` reads it)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def read_since(bootstrap: str, since: dict[Partition, int], until: Callable[[list[Record]], bool],
               timeout: float = 60.0, check: Callable[[], None] | None = None) -> list[Record]:
    """Records of the partitions in ``since`` from those offsets on, until ``until(records)``."""
    c = _consumer(bootstrap)
    c.assign([TopicPartition(t, p, off) for (t, p), off in since.items()])
    got: list[Record] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(got):
            for m in c.consume(10_000, 0.3):
                if m.error() is None:
                    got.append(Record(m.topic(), m.partition(), m.offset(), m.key(), m.value(),
                                      list(m.headers() or ())))
            if check is not None:
                check()
    finally:
        c.close()
    return got


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver:
    """An HTTP server on a free loopback port, in a thread, that records every POST."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                outer.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="webhook-receiver")

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """``python -m ARGS`` in the repository; its standard output (it must succeed)."""
    r = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def readyz(base: str) -> bool:
    """The mediation service at ``base`` answers ``/readyz`` with 200."""
    import httpx

    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def simulated_day(day: Path, run: dict[str, Any], *, riders: int, seed: int) -> tuple[dict[str, Any], list[Any]]:
    """``simulate`` a clean day of ``riders`` into ``day`` and ``assess`` it with the batch command:
    its answers by incident id, and the incidents."""
    import orjson

    r = subprocess.run([sys.executable, "-m", "tests.support.simulate", str(day), "--riders", str(riders),
                        "--preset", "clean", "--seed", str(seed)], **run)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "services.trajectory", "assess", str(day)], **run)
    assert r.returncode == 0, r.stderr
    batch = {o["incident_id"]: o for o in map(orjson.loads, r.stdout.splitlines())}
    incidents = [orjson.loads(x) for x in (day / "incidents.jsonl").read_bytes().splitlines() if x.strip()]
    return batch, incidents


def base_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XJ_")}
    env["XJ_WEBHOOK_ALLOW_PRIVATE"] = "1"  # the tests' webhook receivers listen on loopback
    env.update(values)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait(what: str, fn, timeout: float, check=None, every: float = 0.2):  # type: ignore[no-untyped-def]
    """Poll ``fn`` until it returns something true (calling ``check`` first each time)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if check is not None:
            check()
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout:.0f} s (last: {last!r})")
