"""The event bus port and its in-process adapter.

Semantics every adapter keeps (and the bus contract tests check, on this adapter and on Kafka):
- a topic is an append-only log of messages with a key; messages with one key are delivered in
  the order they were published;
- every consumer group sees every message; within a group, each message is handled by one handler;
- delivery is at least once: a group's position moves on only after its handler returned;
- a message the handler cannot take (it raises, even alone) goes to the topic's dead-letter topic
  with the reason in the ``error`` header, and the group moves on: one bad message never stops a
  partition.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from shared.config import Settings
from shared.topics import dead_letter

logger = logging.getLogger(__name__)

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Message:
    topic: str
    key: str
    value: bytes
    headers: Headers = ()
    partition: int = 0
    offset: int = -1

    def header(self, name: str) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


Handler = Callable[[Sequence[Message]], Awaitable[None]]


class Bus(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def publish(self, topic: str, key: str, value: bytes, headers: Headers = ()) -> None: ...

    async def publish_many(self, topic: str, items: Sequence[tuple[str, bytes]], headers: Headers = ()) -> None: ...

    def subscribe(self, topic: str, group: str, handler: Handler, *, batch: int = 500) -> None: ...

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every subscribed group has handled everything published so far (tests, demo)."""
        ...


def transient(e: BaseException) -> bool:
    """A failure of the infrastructure rather than of the message: the database away or its
    connection dropped. Waited out, never dead-lettered."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    return isinstance(e, OperationalError) or (isinstance(e, DBAPIError) and e.connection_invalidated)


TRANSIENT_PAUSE_MAX_S = 30.0


async def patiently(what: str, call: Callable[[], Awaitable[object]],
                    retry: Callable[[BaseException], bool] = transient) -> None:
    """``call()`` until it does not fail in a way ``retry`` accepts (by default a transient
    failure), with back-off 0.5 s doubling to 30 s: the consumer holds its batch, uncommitted,
    and reads nothing more meanwhile."""
    attempt = 0
    while True:
        try:
            await call()
            return
        except Exception as e:
            if not retry(e):
                raise
            pause = min(TRANSIENT_PAUSE_MAX_S, 0.5 * 2 ** min(attempt, 6))
            attempt += 1
            logger.warning("%s: %s; trying again in %.1f s", what, type(e).__name__, pause)
            await asyncio.sleep(pause)


async def handle_with_dead_letters(bus: Bus, batch: Sequence[Message], handler: Handler, group: str) -> None:
    """Run a batch; if it fails, run its messages one by one and send the ones that still fail to
    the dead-letter topic. A transient failure (the database away) is waited out instead: a good
    message must never be dead-lettered for it. Shared by every adapter so they behave alike."""
    what = f"{group} on {batch[0].topic}" if batch else group
    try:
        await patiently(what, lambda: handler(batch))
        return
    except Exception:
        if len(batch) == 1:
            await _dead(bus, batch[0], group)
            return
        logger.warning("batch of %d on %s failed for %s; retrying one by one", len(batch), batch[0].topic, group)
    for m in batch:
        try:
            await patiently(what, lambda m=m: handler([m]))  # type: ignore[misc]
        except Exception:
            await _dead(bus, m, group)


async def _dead(bus: Bus, m: Message, group: str) -> None:
    import sys
    import traceback

    # The exception's type and message on one line: a traceback's last line is only the last
    # line of a multi-line message (pydantic's ends with a help URL, not the reason).
    reason = " ".join(" | ".join(traceback.format_exception_only(sys.exc_info()[1])).split())[:500]
    logger.error("dead letter from %s at offset %s for %s: %s", m.topic, m.offset, group, reason)
    value, headers = dead_letter_copy(m, reason, group)
    # whatever the failure: a dead letter not published would be lost once the batch is committed
    await patiently(f"publishing a dead letter of {m.topic}",
                    lambda: bus.publish(dead_letter(m.topic), m.key, value, headers), retry=lambda e: True)


DEAD_LETTER_MAX_VALUE = 900_000  # bytes of a poison's value kept on its dead-letter copy


def dead_letter_copy(m: Message, reason: str, group: str) -> tuple[bytes, Headers]:
    """The value and headers a dead letter of ``m`` is published with: the reason, the group and
    the source offset in headers. A value near the broker's size limit is cut to its first
    ``DEAD_LETTER_MAX_VALUE`` bytes (header ``truncated-from``: its length; the whole message stays
    on its topic at ``source-offset``) -- with the headers added it would not fit, and a dead letter
    that cannot be published would stop the consumer it was meant to keep going."""
    value, extra = m.value, tuple[tuple[str, bytes], ...]()
    if len(value) > DEAD_LETTER_MAX_VALUE:
        value, extra = value[:DEAD_LETTER_MAX_VALUE], (("truncated-from", str(len(m.value)).encode()),)
    return value, (*m.headers, ("error", reason[:500].encode()), ("group", group.encode()),
                   ("source-offset", str(m.offset).encode()), *extra)


@dataclass
class _Sub:
    topic: str
    group: str
    handlers: list[Handler]
    batch: int
    task: asyncio.Task[None] | None = None


@dataclass
class InMemoryBus:
    """One process, one log per topic, a position per consumer group: Kafka's semantics with one
    partition per topic. Messages are kept until the process ends."""

    logs: dict[str, list[Message]] = field(default_factory=dict)
    positions: dict[tuple[str, str], int] = field(default_factory=dict)
    _subs: dict[tuple[str, str], _Sub] = field(default_factory=dict)
    _changed: asyncio.Condition | None = None
    _running: bool = False

    def _cond(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def start(self) -> None:
        self._running = True
        for sub in self._subs.values():
            if sub.task is None:
                sub.task = asyncio.create_task(self._consume(sub), name=f"bus:{sub.topic}:{sub.group}")

    async def stop(self) -> None:
        self._running = False
        tasks = [s.task for s in self._subs.values() if s.task is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for s in self._subs.values():
            s.task = None

    async def publish(self, topic: str, key: str, value: bytes, headers: Headers = ()) -> None:
        await self.publish_many(topic, [(key, value)], headers)

    async def publish_many(self, topic: str, items: Sequence[tuple[str, bytes]], headers: Headers = ()) -> None:
        log = self.logs.setdefault(topic, [])
        for key, value in items:
            log.append(Message(topic, key, value, headers, 0, len(log)))
        cond = self._cond()
        async with cond:
            cond.notify_all()

    def subscribe(self, topic: str, group: str, handler: Handler, *, batch: int = 500) -> None:
        sub = self._subs.get((topic, group))
        if sub is not None:  # a second worker in the same group: messages are shared, not repeated
            sub.handlers.append(handler)
            return
        sub = _Sub(topic, group, [handler], batch)
        self._subs[(topic, group)] = sub
        self.positions.setdefault((topic, group), 0)
        if self._running:
            sub.task = asyncio.create_task(self._consume(sub))

    async def _consume(self, sub: _Sub) -> None:
        cond = self._cond()
        turn = 0
        while True:
            pos = self.positions[(sub.topic, sub.group)]
            log = self.logs.get(sub.topic, [])
            if pos >= len(log):
                async with cond:
                    await cond.wait_for(lambda: self.positions[(sub.topic, sub.group)] < len(self.logs.get(sub.topic, [])))
                continue
            chunk = log[pos:pos + sub.batch]
            handler = sub.handlers[turn % len(sub.handlers)]
            turn += 1
            await handle_with_dead_letters(self, chunk, handler, sub.group)
            self.positions[(sub.topic, sub.group)] = pos + len(chunk)
            async with cond:
                cond.notify_all()

    async def drain(self, timeout: float = 10.0) -> None:
        cond = self._cond()

        def done() -> bool:
            return all(self.positions[k] >= len(self.logs.get(k[0], [])) for k in self._subs)

        async with cond:
            await asyncio.wait_for(cond.wait_for(done), timeout)


def make_bus(settings: Settings) -> Bus:
    """The bus ``XJ_BUS`` names: ``memory`` (in-process, the embedded default) or ``kafka``."""
    if settings.bus == "kafka":
        from shared.bus_kafka import KafkaBus

        return KafkaBus(settings.kafka_bootstrap)
    if settings.bus != "memory":
        raise SystemExit(f"XJ_BUS must be memory or kafka, not {settings.bus!r}")
    return InMemoryBus()
