"""Every path a message takes from a topic to its handler, behind one small test adapter, so that
one contract suite (``test_consumption_paths.py``) runs on all of them:

- ``memory``: :class:`shared.bus.InMemoryBus`, the embedded default;
- ``kafka-bus``: :class:`shared.bus_kafka.KafkaBus` (aiokafka), which mediation and notify use;
- ``faust-agent``: the trajectory worker's faust agent on ``rider.platform-events``;
- ``ping-consumer``: the trajectory worker's own confluent-kafka batch consumer on ``rider.gps``.

On the two bus paths the handler is the test's own (values ``<key>:<n>``, ``poison...`` raises).
On the two worker paths it is the real one: the worker runs as production runs it
(``tests/contract/worker_proc.py``, an OS process: a crash is a SIGKILL), the messages are real
pings and platform events, and "handled" means stored by the feed store's unit of work, in the
order those units committed. Each path numbers a key's messages 0, 1, 2, ... and reports what it
handled as ``(key, n)`` pairs.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from shared import topics
from shared.bus import Headers, InMemoryBus, Message
from shared.topics import dead_letter

Item = tuple[str, bytes, Headers]  # key, value, headers
Handled = tuple[str, int]
ROOT = Path(__file__).resolve().parents[2]
BASE_MS = int(datetime(2025, 5, 14, 12, 0, tzinfo=UTC).timestamp() * 1000)  # the first ping's time
STEP_MS = 5000  # a ping every 5 s


class ConsumerPath(Protocol):
    name: str
    topic: str  # where the test publishes
    reason: str  # what the error header of a poison's dead letter says (lower case)
    dead_letter_group: str  # what its group header says

    def good(self, key: str, n: int) -> bytes: ...

    def poison(self, key: str) -> bytes: ...

    async def start(self, *, stuck_at: Handled | None = None) -> None:
        """Start consuming (again, after :meth:`crash`); the batch holding ``stuck_at`` is never
        finished: call :meth:`wait_stuck`, then :meth:`crash`."""

    async def wait_stuck(self, timeout: float = 30.0) -> None: ...

    async def crash(self) -> None:
        """Stop with the stuck batch in hand, as close to dying as the path allows."""

    async def stop(self) -> None: ...

    async def publish(self, items: Sequence[Item]) -> None: ...

    def handled(self) -> list[Handled]: ...

    async def wait_handled(self, want: Callable[[list[Handled]], bool], timeout: float = 60.0) -> list[Handled]: ...

    async def dead_letters(self, keys: set[str], n: int, timeout: float = 30.0) -> list[Message]:
        """The dead letters of ``keys`` once there are ``n`` (or the timeout passed)."""


async def _until(check: Callable[[], bool], timeout: float, alive: Callable[[], None] = lambda: None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        alive()
        if time.monotonic() > deadline:
            return
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------- the bus port's adapters


class BusPath:
    """A :class:`shared.bus.Bus` with one subscription in one group and a reader of its dead
    letters. A crash is ``bus.stop()`` with the handler in the middle of a batch (it is cancelled),
    the nearest thing to dying inside one process; the restart is the same bus started again."""

    reason = "valueerror: cannot parse this message"

    def __init__(self, name: str, bus: Any, topic: str, group: str, batch: int = 5) -> None:
        self.name, self.bus, self.topic, self.dead_letter_group = name, bus, topic, group
        self._handled: list[Handled] = []
        self._dead: list[Message] = []
        self._stuck_at: Handled | None = None
        self._stuck = asyncio.Event()
        self._subscribed = False
        self.batch = batch

    def good(self, key: str, n: int) -> bytes:
        return f"{key}:{n}".encode()

    def poison(self, key: str) -> bytes:
        return f"poison for {key}".encode()

    async def _handle(self, batch: Sequence[Message]) -> None:
        got: list[Handled] = []
        for m in batch:
            if m.value.startswith(b"poison"):
                raise ValueError("cannot parse this message")
            key, n = m.value.decode().rsplit(":", 1)
            got.append((key, int(n)))
        if self._stuck_at is not None and self._stuck_at in got:
            self._stuck.set()
            await asyncio.Event().wait()  # until bus.stop() cancels us
        self._handled += got

    async def _dead_letter(self, batch: Sequence[Message]) -> None:
        self._dead += batch

    async def start(self, *, stuck_at: Handled | None = None) -> None:
        self._stuck_at = stuck_at
        if not self._subscribed:
            self.bus.subscribe(self.topic, self.dead_letter_group, self._handle, batch=self.batch)
            self.bus.subscribe(dead_letter(self.topic), f"{self.dead_letter_group}.dlq-reader", self._dead_letter)
            self._subscribed = True
        await self.bus.start()

    async def wait_stuck(self, timeout: float = 30.0) -> None:
        await asyncio.wait_for(self._stuck.wait(), timeout)

    async def crash(self) -> None:
        await self.bus.stop()

    async def stop(self) -> None:
        await self.bus.stop()

    async def publish(self, items: Sequence[Item]) -> None:
        i = 0
        while i < len(items):  # runs of one headers value, each in one publish_many
            j = i
            while j < len(items) and items[j][2] == items[i][2]:
                j += 1
            await self.bus.publish_many(self.topic, [(k, v) for k, v, _ in items[i:j]], items[i][2])
            i = j

    def handled(self) -> list[Handled]:
        return list(self._handled)

    async def wait_handled(self, want: Callable[[list[Handled]], bool], timeout: float = 60.0) -> list[Handled]:
        await _until(lambda: want(self._handled), timeout)
        return self.handled()

    async def dead_letters(self, keys: set[str], n: int, timeout: float = 30.0) -> list[Message]:
        def mine() -> list[Message]:
            return [m for m in self._dead if m.key in keys]

        await _until(lambda: len(mine()) >= n, timeout)
        await asyncio.sleep(0.3)  # one more would be one too many
        return mine()


def memory_path(topic: str, group: str) -> BusPath:
    return BusPath("memory", InMemoryBus(), topic, group)


def kafka_bus_path(bootstrap: str, topic: str, group: str) -> BusPath:
    from shared.bus_kafka import KafkaBus

    return BusPath("kafka-bus", KafkaBus(bootstrap, partitions=6, client_id="xj-contract"), topic, group)


# ---------------------------------------------------------------- the trajectory worker's paths


class WorkerPath:
    """The trajectory worker (``tests/contract/worker_proc.py``) as an OS process of its own, in a
    consumer group of its own that starts at the topics' current end; messages go to the real
    topic (``rider.gps`` or ``rider.platform-events``) with keys of the test's own. A crash is
    SIGKILL: nothing of the worker's shutdown runs."""


    def __init__(self, name: str, topic: str, bootstrap: str, workdir: Path, batch: int = 5) -> None:
        from services.trajectory.entrypoints.replay import ensure_topics
        from tests.integration.kafka.procs import end_offsets, start_worker_at_end

        self.name, self.topic, self.bootstrap, self.workdir = name, topic, bootstrap, workdir
        self.reason = "not json"
        self.group = f"xj-ct-{uuid.uuid4().hex[:8]}"
        from services.trajectory.entrypoints.stream import consumer_groups

        # a dead letter names the consumer group that read the message (pings: the worker's own .gps group)
        self.dead_letter_group = next(g for g, names in consumer_groups(self.group).items() if topic in names)
        self.log = workdir / "handled.jsonl"
        self.log.touch()
        self.env = {**os.environ, "XJ_KAFKA_BOOTSTRAP": bootstrap, "XJ_WORKER_GROUP": self.group,
                    "XJ_DATA_DIR": str(workdir / "var"), "XJ_DATABASE_URL": f"sqlite:///{workdir / 'xj.db'}",
                    "XJ_CT_LOG": str(self.log), "XJ_FEED_BATCH": str(batch), "XJ_GPS_BATCH": str(batch),
                    "XJ_FEED_WITHIN_S": "0.05", "XJ_GAP_SWEEP_S": "3600", "PYTHONPATH": str(ROOT)}
        consumed = (topics.PLATFORM_EVENTS, topics.GPS, topics.ASSESSMENT_REQUESTED)
        ensure_topics(bootstrap, (*consumed, *map(dead_letter, consumed), topics.ASSESSMENT_READY,
                                  topics.GAP_FLAGGED), 6)
        assert start_worker_at_end(bootstrap, self.group), "could not start the worker's groups at the end"
        self._since = end_offsets(bootstrap, [dead_letter(topic)])
        self._proc: subprocess.Popen[bytes] | None = None
        self._runs = 0

    # what the messages look like

    def good(self, key: str, n: int) -> bytes:
        if self.topic == topics.GPS:
            return json.dumps({"rider_id": key, "ts": BASE_MS + n * STEP_MS, "lat": 23.75, "lon": 114.71,
                               "accuracy_m": 10.0}).encode()
        t = datetime.fromtimestamp((BASE_MS + n * STEP_MS) / 1000, UTC)
        return json.dumps({"event_id": f"{key}#{n}", "kind": "presence", "type": "online", "rider_id": key,
                           "platform": "meituan", "ts": t.isoformat()}).encode()

    def poison(self, key: str) -> bytes:
        return b"\xff\xfe this is not JSON {" + key.encode()

    def _number(self, row: dict[str, Any]) -> Handled:
        if "t" in row:
            return row["rider"], round((row["t"] * 1000 - BASE_MS) / STEP_MS)
        key, n = row["event"].rsplit("#", 1)
        return key, int(n)

    # running it

    async def start(self, *, stuck_at: Handled | None = None) -> None:
        env = dict(self.env)
        if stuck_at is not None:
            key, n = stuck_at
            env["XJ_CT_STUCK"] = (f"{key}|{(BASE_MS + n * STEP_MS) / 1000}" if self.topic == topics.GPS
                                  else f"{key}|{key}#{n}")
        self._runs += 1
        out = (self.workdir / f"worker-{self._runs}.log").open("wb")
        self._proc = subprocess.Popen([sys.executable, "-m", "tests.contract.worker_proc"], cwd=ROOT, env=env,
                                      stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        out.close()

    def _alive(self) -> None:
        p = self._proc
        if p is not None and p.poll() is not None:
            raise AssertionError(f"the worker exited with {p.returncode}:\n{self.tail()}")

    def tail(self, n: int = 30) -> str:
        logs = sorted(self.workdir.glob("worker-*.log"))
        return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-n:]) if logs else ""

    def _rows(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.log.read_text(encoding="utf-8").splitlines() if x.strip()]

    async def wait_stuck(self, timeout: float = 60.0) -> None:
        await _until(lambda: any(r.get("stuck") for r in self._rows()), timeout, self._alive)
        assert any(r.get("stuck") for r in self._rows()), f"the worker never got the batch:\n{self.tail()}"

    async def crash(self) -> None:
        assert self._proc is not None
        self._proc.kill()
        self._proc.wait(30)
        self._proc = None

    async def stop(self) -> None:
        p, self._proc = self._proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)

    async def publish(self, items: Sequence[Item]) -> None:
        from tests.integration.kafka.procs import flush, producer

        p = producer(self.bootstrap)
        for key, value, headers in items:
            p.produce(self.topic, value, key=key.encode(), headers=list(headers))
        flush(p)

    def handled(self) -> list[Handled]:
        return [self._number(r) for r in self._rows() if "rider" in r]

    async def wait_handled(self, want: Callable[[list[Handled]], bool], timeout: float = 60.0) -> list[Handled]:
        await _until(lambda: want(self.handled()), timeout, self._alive)
        return self.handled()

    async def dead_letters(self, keys: set[str], n: int, timeout: float = 30.0) -> list[Message]:
        from shared.bus_kafka import record_message
        from tests.integration.kafka.procs import read_since

        def mine(records: list[Any]) -> list[Message]:
            return [record_message(r) for r in records if (r.key or b"").decode(errors="replace") in keys]

        got = await asyncio.to_thread(read_since, self.bootstrap, self._since, lambda rs: len(mine(rs)) >= n,
                                      timeout, self._alive)
        more = await asyncio.to_thread(read_since, self.bootstrap, self._since, lambda rs: False, 1.0)
        return mine(more if len(more) >= len(got) else got)


def faust_agent_path(bootstrap: str, workdir: Path) -> WorkerPath:
    return WorkerPath("faust-agent", topics.PLATFORM_EVENTS, bootstrap, workdir)


def ping_consumer_path(bootstrap: str, workdir: Path) -> WorkerPath:
    return WorkerPath("ping-consumer", topics.GPS, bootstrap, workdir)
