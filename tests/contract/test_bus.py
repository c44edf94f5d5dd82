"""The bus contract: one suite, run on the in-process adapter and on a real Kafka broker.

Each test is a scenario run in its own event loop; ``make_bus`` gives a fresh bus of the adapter
under test and ``names`` topic and group names used by no other test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Coroutine, Sequence
from typing import Any

import pytest

from shared.bus import Bus, Message
from shared.topics import dead_letter
from tests.contract.conftest import BusFactory, Names

SCENARIO_TIMEOUT = 30.0


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, SCENARIO_TIMEOUT))


@contextlib.asynccontextmanager
async def running(bus: Bus) -> AsyncIterator[Bus]:
    await bus.start()
    try:
        yield bus
    finally:
        await bus.stop()


class Recorder:
    """A handler that keeps what it was given, batch by batch."""

    def __init__(self) -> None:
        self.batches: list[list[Message]] = []

    async def __call__(self, batch: Sequence[Message]) -> None:
        self.batches.append(list(batch))

    @property
    def messages(self) -> list[Message]:
        return [m for b in self.batches for m in b]

    @property
    def values(self) -> list[bytes]:
        return [m.value for m in self.messages]


def test_messages_of_one_key_arrive_in_order(make_bus: BusFactory, names: Names) -> None:
    topic, keys, per_key = names.topic(), [f"rider-{k}" for k in range(8)], 40
    sent = [(keys[i % len(keys)], f"{keys[i % len(keys)]}:{i // len(keys)}".encode())
            for i in range(len(keys) * per_key)]

    async def scenario() -> None:
        bus, got = make_bus(), Recorder()
        bus.subscribe(topic, names.group(), got, batch=7)
        async with running(bus):
            await bus.publish_many(topic, sent[:100])
            for key, value in sent[100:130]:
                await bus.publish(topic, key, value)
            await bus.publish_many(topic, sent[130:])
            await bus.drain()
        by_key: dict[str, list[Message]] = defaultdict(list)
        for m in got.messages:
            by_key[m.key].append(m)
        assert sorted(by_key) == sorted(keys)
        for key, ms in by_key.items():
            assert [m.value for m in ms] == [f"{key}:{n}".encode() for n in range(per_key)]
            assert len({m.partition for m in ms}) == 1, f"{key} spread over partitions"
            offsets = [m.offset for m in ms]
            assert offsets == sorted(offsets) and offsets[0] >= 0 and len(set(offsets)) == per_key

    run(scenario())


def test_every_group_sees_every_message(make_bus: BusFactory, names: Names) -> None:
    topic = names.topic()
    sent = [(f"case-{i % 5}", f"event-{i}".encode()) for i in range(60)]

    async def scenario() -> None:
        bus = make_bus()
        groups = {g: Recorder() for g in ("notify", "audit", "stats")}
        for g, rec in groups.items():
            bus.subscribe(topic, names.group(g), rec)
        async with running(bus):
            await bus.publish_many(topic, sent)
            await bus.drain()
        for g, rec in groups.items():
            assert sorted(rec.values) == sorted(v for _, v in sent), g

    run(scenario())


def test_members_of_one_group_split_the_messages(make_bus: BusFactory, names: Names) -> None:
    topic, group = names.topic(), names.group()
    sent = [(f"rider-{i % 24}", f"ping-{i}".encode()) for i in range(240)]

    async def scenario() -> None:
        bus, first, second = make_bus(), Recorder(), Recorder()
        bus.subscribe(topic, group, first, batch=10)
        bus.subscribe(topic, group, second, batch=10)
        async with running(bus):
            await bus.publish_many(topic, sent)
            await bus.drain()
        a, b = first.values, second.values
        assert a and b, f"one member got nothing ({len(a)} / {len(b)})"
        assert len(set(a)) == len(a) and len(set(b)) == len(b), "a member saw a message twice"
        assert not set(a) & set(b), "both members handled the same message"
        assert sorted(a + b) == sorted(v for _, v in sent)

    run(scenario())


def test_members_joining_mid_stream_lose_nothing(make_bus: BusFactory, names: Names) -> None:
    """On Kafka each join is a group rebalance while batches are in hand: the batch in hand is
    finished and committed before its partitions move, so nothing is lost or handled twice."""
    topic, group = names.topic(), names.group()
    seen: Counter[bytes] = Counter()

    async def slow(batch: Sequence[Message]) -> None:
        await asyncio.sleep(0.03)
        seen.update(m.value for m in batch)

    async def scenario() -> None:
        bus = make_bus()
        bus.subscribe(topic, group, slow, batch=20)
        sent: list[bytes] = []
        async with running(bus):
            for r in range(50):  # ~2 s of traffic: a Kafka rebalance takes up to a heartbeat (1 s)
                chunk = [(f"rider-{i % 24}", f"ping-{r}-{i}".encode()) for i in range(20)]
                await bus.publish_many(topic, chunk)
                sent += [v for _, v in chunk]
                if r in (5, 25):
                    bus.subscribe(topic, group, slow, batch=20)
                await asyncio.sleep(0.04)
            await bus.drain(15)
        assert set(seen) == set(sent), f"{len(set(sent) - set(seen))} messages lost"
        assert not [v for v, n in seen.items() if n > 1], "handled twice"

    run(scenario())


def test_a_poison_message_goes_to_the_dead_letter_topic(make_bus: BusFactory, names: Names) -> None:
    topic, group = names.topic(), names.group()
    sent = [(f"rider-{i % 3}", f"ok-{i}".encode()) for i in range(20)]
    sent.insert(7, ("rider-1", b"poison"))

    async def picky(batch: Sequence[Message]) -> None:
        for m in batch:
            if m.value == b"poison":
                raise ValueError("cannot parse this ping")
        handled.extend(m.value for m in batch)

    handled: list[bytes] = []

    async def scenario() -> None:
        bus, dead = make_bus(), Recorder()
        bus.subscribe(topic, group, picky, batch=50)
        bus.subscribe(dead_letter(topic), names.group("dlq-reader"), dead)
        async with running(bus):
            await bus.publish_many(topic, sent[:10])
            await bus.publish(topic, *sent[10], headers=(("trace", b"t-10"),))
            await bus.publish_many(topic, sent[11:])
            await bus.drain()
        assert sorted(handled) == sorted(v for _, v in sent if v != b"poison")
        assert len(dead.messages) == 1
        letter = dead.messages[0]
        assert (letter.topic, letter.key, letter.value) == (dead_letter(topic), "rider-1", b"poison")
        assert b"ValueError: cannot parse this ping" in (letter.header("error") or b"")
        assert letter.header("group") == group.encode()
        assert letter.header("source-offset") not in (None, b"-1")

    run(scenario())


@pytest.mark.parametrize("how", ["handler-cancelled", "stopped-mid-batch"])
def test_an_unfinished_batch_is_delivered_again_after_a_restart(
        make_bus: BusFactory, names: Names, how: str) -> None:
    """At least once: a consumer that stops before its handler returned leaves that batch (and
    what follows) to the group's next consumer, which here is the same bus started again."""
    topic, group = names.topic(), names.group()
    sent = [("rider-7", f"ping-{i:02d}".encode()) for i in range(30)]
    finished: list[bytes] = []  # from batches whose handler returned, before the restart
    again: list[bytes] = []  # after the restart
    phase = "first"
    stuck = asyncio.Event()

    async def handler(batch: Sequence[Message]) -> None:
        values = [m.value for m in batch]
        if phase == "again":
            again.extend(values)
            return
        if b"ping-12" in values:
            stuck.set()
            if how == "handler-cancelled":
                raise asyncio.CancelledError  # not an Exception: no dead letter, no commit
            await asyncio.Event().wait()  # until bus.stop() cancels us
        finished.extend(values)

    async def scenario() -> None:
        nonlocal phase
        bus = make_bus()
        bus.subscribe(topic, group, handler, batch=5)
        async with running(bus):
            await bus.publish_many(topic, sent)
            await asyncio.wait_for(stuck.wait(), 10)
        phase = "again"
        async with running(bus):
            await bus.drain()
        values = [v for _, v in sent]
        assert b"ping-12" not in finished
        assert finished == values[:len(finished)]
        assert again == values[len(finished):]

    run(scenario())


def test_headers_round_trip(make_bus: BusFactory, names: Names) -> None:
    topic = names.topic()
    headers = (("event-type", b"GapFlagged"), ("schema-version", b"2"), ("empty", b""),
               ("trace", bytes(range(256))))

    async def scenario() -> None:
        bus, got = make_bus(), Recorder()
        bus.subscribe(topic, names.group(), got)
        async with running(bus):
            await bus.publish(topic, "骑手-42", "配送中断".encode(), headers)
            await bus.publish(topic, "rider-43", b"no headers")
            await bus.drain()
        by_key = {m.key: m for m in got.messages}
        assert set(by_key) == {"骑手-42", "rider-43"}
        m = by_key["骑手-42"]
        assert (m.topic, m.value, m.headers) == (topic, "配送中断".encode(), headers)
        assert m.header("schema-version") == b"2" and m.header("missing") is None
        assert m.offset >= 0 and m.partition >= 0
        assert by_key["rider-43"].headers == ()

    run(scenario())
