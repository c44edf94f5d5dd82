"""The bus contract on every path a message takes to its handler: the in-process bus, KafkaBus,
and the trajectory worker's own consumers on Kafka -- its faust agent (``rider.platform-events``)
and its ``PingConsumer`` (``rider.gps``), run as production runs them (``tests/contract/paths.py``).

| property                                   | memory | kafka-bus | faust-agent | ping-consumer |
|--------------------------------------------|--------|-----------|-------------|---------------|
| one key's messages handled in order        | here   | here      | here        | here          |
| poison -> ``<topic>.dlq`` with its reason  | here   | here      | here        | here          |
| unfinished batch handled again (crash, stop) | here  | here      | here        | here          |
| headers kept (on the dead letter)          | here   | here      | here        | here          |
| headers reach the handler                  | test_bus.py | test_bus.py | --     | --            |
| every group sees every message             | test_bus.py | test_bus.py | --     | --            |
| members of a group split / join mid-stream | test_bus.py | test_bus.py | --     | --            |

Not run on the worker paths, and why:
- headers reaching the handler: the worker's handlers take a value and store what it says; the
  only place a worker passes a message's headers on is the dead letter, checked here.
- every group sees every message: a worker joins one group per topic (``consumer_groups``); two
  groups on one topic are two deployments, which is the broker's business, checked on KafkaBus.
- members of one group splitting the partitions, and joining or leaving mid-stream: two or more
  worker processes; ``tests/integration/kafka/test_scale_out.py`` runs that (two workers, one
  SIGKILLed mid-replay, every assessment checked against the batch engine), not here, where each
  worker start costs seconds.

Each scenario runs in its own event loop; keys are the test's own, so a shared topic's other
traffic (the worker paths read the real topics) is not counted.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from typing import Any

import pytest

from shared.bus import Headers
from shared.topics import dead_letter
from tests.contract.conftest import PathFactory
from tests.contract.paths import Handled, Item

SCENARIO_TIMEOUT = 150.0


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(scenario, SCENARIO_TIMEOUT))


def riders(n: int) -> list[str]:
    run_id = uuid.uuid4().hex[:6]
    return [f"R-CT-{run_id}-{k}" for k in range(n)]


def of(keys: list[str], handled: list[Handled]) -> dict[str, list[int]]:
    """Each key's message numbers in the order they were handled."""
    out: dict[str, list[int]] = {k: [] for k in keys}
    for key, n in handled:
        if key in out:
            out[key].append(n)
    return out


def test_one_keys_messages_are_handled_in_order(consumer_path: PathFactory) -> None:
    keys, per_key = riders(6), 25

    async def scenario() -> None:
        path = consumer_path()
        sent: list[Item] = [(keys[i % len(keys)], path.good(keys[i % len(keys)], i // len(keys)), ())
                            for i in range(len(keys) * per_key)]
        await path.start()
        try:
            await path.publish(sent[:60])
            await path.publish(sent[60:])
            got = of(keys, await path.wait_handled(lambda h: sum(map(len, of(keys, h).values())) >= len(sent)))
        finally:
            await path.stop()
        for key in keys:
            assert got[key] == list(range(per_key)), f"{path.name}: {key} handled as {got[key]}"

    run(scenario())


def test_a_poison_goes_to_its_dead_letter_topic_with_the_reason(consumer_path: PathFactory) -> None:
    keys, per_key = riders(3), 8

    async def scenario() -> None:
        path = consumer_path()
        poison = path.poison(keys[1])
        sent: list[Item] = [(keys[i % 3], path.good(keys[i % 3], i // 3), ()) for i in range(3 * per_key)]
        sent.insert(7, (keys[1], poison, ()))
        await path.start()
        try:
            await path.publish(sent)
            got = of(keys, await path.wait_handled(lambda h: sum(map(len, of(keys, h).values())) >= 3 * per_key))
            dead = await path.dead_letters(set(keys), 1)
        finally:
            await path.stop()
        for key in keys:  # the good messages before and after the poison, its key's included
            assert got[key] == list(range(per_key)), f"{path.name}: {key} handled as {got[key]}"
        assert len(dead) == 1, f"{path.name}: {len(dead)} dead letters: {dead}"
        letter = dead[0]
        assert (letter.topic, letter.key, letter.value) == (dead_letter(path.topic), keys[1], poison)
        error = (letter.header("error") or b"").decode(errors="replace").lower()
        assert path.reason in error, f"{path.name}: the error header says {error!r}"
        assert letter.header("group") == path.dead_letter_group.encode()
        assert int(letter.header("source-offset") or b"-1") >= 0

    run(scenario())


@pytest.mark.parametrize("ending", ["crash", "stop"])
def test_an_unfinished_batch_is_handled_again(consumer_path: PathFactory, ending: str) -> None:
    """At least once: a consumer that ends with a batch in hand (its handler never returned: the
    database hangs) leaves that batch, and what follows, to the group's next consumer -- here the
    same path started again. It ends by a crash (SIGKILL for a worker process) or a graceful stop
    (SIGTERM, then SIGKILL after its grace; faust's ``take_events`` acks every event of a batch in a
    ``finally``, finished or not: no such ack may reach a commit). What was finished before may
    come again too (an offset committed asynchronously), but only as a run of the key's messages
    in order, never with a gap."""
    [key] = riders(1)
    total, stuck = 30, 12

    async def scenario() -> None:
        path = consumer_path()
        await path.start(stuck_at=(key, stuck))
        try:
            await path.publish([(key, path.good(key, n), ()) for n in range(total)])
            await path.wait_stuck()
            await (path.crash() if ending == "crash" else path.stop())
            before = of([key], path.handled())[key]
            await path.start()
            await path.wait_handled(lambda h: set(of([key], h)[key]) >= set(range(total)))
        finally:
            await path.stop()
        after = of([key], path.handled())[key][len(before):]
        assert stuck not in before, f"{path.name}: the stuck batch was finished: {before}"
        assert before == list(range(len(before))), f"{path.name}: before the {ending}: {before}"
        assert after, f"{path.name}: nothing handled after the restart"
        assert after[0] <= len(before) and after == list(range(after[0], total)), \
            f"{path.name}: {len(before)} finished before the {ending}; after the restart: {after}"

    run(scenario())


def test_headers_are_kept_on_the_dead_letter(consumer_path: PathFactory) -> None:
    [key] = riders(1)
    headers: Headers = (("event-type", b"GpsPing"), ("schema-version", b"2"), ("empty", b""),
                        ("trace", bytes(range(256))), ("骑手", "配送中断".encode()))

    async def scenario() -> None:
        path = consumer_path()
        poison = path.poison(key)
        await path.start()
        try:
            await path.publish([(key, path.good(key, 0), headers), (key, poison, headers), (key, path.good(key, 1), ())])
            got = of([key], await path.wait_handled(lambda h: len(of([key], h)[key]) >= 2))
            dead = await path.dead_letters({key}, 1)
        finally:
            await path.stop()
        assert got[key] == [0, 1], f"{path.name}: a message with headers was not handled: {got[key]}"
        [letter] = dead
        assert letter.value == poison
        assert letter.headers[:len(headers)] == headers, f"{path.name}: {letter.headers}"
        assert [k for k, _ in letter.headers[len(headers):]] == ["error", "group", "source-offset"]

    run(scenario())
