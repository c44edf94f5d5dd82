"""handle_with_dead_letters: a bad message is dead-lettered alone; a transient failure (the
database away) is waited out and dead-letters nothing; a dead letter that cannot be published yet
is published later, not dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from sqlalchemy.exc import OperationalError

import shared.bus as bus_module
from shared.bus import Headers, Message, handle_with_dead_letters

pytestmark = pytest.mark.unit


class Recorder:
    def __init__(self, fail_publishes: int = 0) -> None:
        self.published: list[tuple[str, str, bytes, Headers]] = []
        self.fail_publishes = fail_publishes

    async def publish(self, topic: str, key: str, value: bytes, headers: Headers = ()) -> None:
        if self.fail_publishes:
            self.fail_publishes -= 1
            raise ConnectionError("broker away")
        self.published.append((topic, key, value, headers))


def batch(n: int) -> list[Message]:
    return [Message("t", f"k{i}", f"v{i}".encode(), (), 0, i) for i in range(n)]


@pytest.fixture(autouse=True)
def quick_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bus_module, "TRANSIENT_PAUSE_MAX_S", 0.001)


def test_the_database_away_is_waited_out_and_nothing_is_dead_lettered() -> None:
    bus, seen, outages = Recorder(), [], [3]

    async def handler(msgs: Sequence[Message]) -> None:
        if outages[0]:
            outages[0] -= 1
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        seen.extend(m.offset for m in msgs)

    asyncio.run(handle_with_dead_letters(bus, batch(4), handler, "g"))  # type: ignore[arg-type]
    assert seen == [0, 1, 2, 3] and bus.published == []


def test_a_bad_message_is_dead_lettered_alone_with_its_reason() -> None:
    bus, seen = Recorder(), []

    async def handler(msgs: Sequence[Message]) -> None:
        if any(m.offset == 2 for m in msgs):
            raise ValueError("rider_id missing")
        seen.extend(m.offset for m in msgs)

    asyncio.run(handle_with_dead_letters(bus, batch(4), handler, "g"))  # type: ignore[arg-type]
    assert seen == [0, 1, 3]
    ((topic, key, _, headers),) = bus.published
    assert (topic, key) == ("t.dlq", "k2")
    assert dict(headers)["error"] == b"ValueError: rider_id missing"


def test_a_dead_letter_the_broker_refuses_is_published_when_it_is_back() -> None:
    bus = Recorder(fail_publishes=2)

    async def handler(msgs: Sequence[Message]) -> None:
        raise ValueError("not JSON")

    asyncio.run(handle_with_dead_letters(bus, batch(1), handler, "g"))  # type: ignore[arg-type]
    assert [p[1] for p in bus.published] == ["k0"]
