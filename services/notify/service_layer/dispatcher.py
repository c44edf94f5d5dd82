"""Sends what is due: claims due notifications, sends each in its own task bounded by its
channel's timeout, and writes outcomes back in batches: sent; failed with the next attempt
after an exponential backoff with full jitter; dead after the last attempt (or at once when
retrying cannot help).

A hanging peer holds at most ``per_recipient`` slots (one insurer's dead endpoint with a
hundred notifications queued must not take every slot): a claimed notification whose
recipient has that many in flight is given back, unattempted, to be claimed again after a
wait as long as the oldest of those sends has been running (a fast peer is waited for a few
milliseconds, a hanging one for up to half its timeout)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from services.notify.adapters.channels import ChannelPort
from services.notify.domain.model import DeliveryResult, Notification, State
from services.notify.domain.ports import NotificationStore, Outcome
from services.notify.domain.retry import RetryPolicy

logger = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    def __init__(self, *, store: NotificationStore, channels: Mapping[str, ChannelPort], policy: RetryPolicy,
                 timeouts: Mapping[str, float], concurrency: int = 32, per_recipient: int = 4,
                 poll: float = 1.0, lease_margin: float = 30.0, clock: Callable[[], datetime] = utcnow,
                 rand: Callable[[], float] = random.random) -> None:
        self.store, self.channels, self.policy = store, channels, policy
        self.timeouts, self.concurrency, self.poll = dict(timeouts), concurrency, poll
        self.per_recipient = max(1, per_recipient)
        self._busy: dict[tuple[str, str], dict[str, float]] = {}  # in flight: id -> start (monotonic)
        self.claim_batch = max(1, concurrency // 8)
        self.lease_s = max(self.timeouts.values(), default=30.0) + lease_margin
        self.clock, self.rand = clock, rand
        self._tasks: set[asyncio.Task[None]] = set()
        self._outcomes: list[Outcome] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self.stats = {"sent": 0, "failed": 0, "dead": 0, "timeouts": 0, "released": 0}

    def wake(self) -> None:
        """Look for due notifications now (new ones were recorded, or one was replayed)."""
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def dispatch_due(self) -> int:
        """Claim what is due (as many as there are free slots) and start sending it; the
        number of sends started."""
        started = 0
        for _ in range(3):  # again, when some claims had to be given back
            free = self.concurrency - len(self._tasks)
            if free <= 0 or (self._tasks and free < self.claim_batch):
                break  # claim in batches, not one by one as each send ends
            claimed = await asyncio.to_thread(self.store.claim_due, now=self.clock(), limit=free,
                                              lease_s=self.lease_s, max_attempts=self.policy.max_attempts)
            released = []
            for n in claimed:
                busy = self._busy.setdefault((n.channel, n.recipient), {})
                if len(busy) >= self.per_recipient:
                    released.append(self._release(n, min(busy.values())))
                    continue
                busy[n.id] = time.monotonic()
                t = asyncio.create_task(self._deliver(n), name=f"notify:{n.channel}:{n.id}")
                self._tasks.add(t)
                t.add_done_callback(self._done)
                started += 1
            if not released:
                break
            self._outcomes.extend(released)
            self._ensure_writer()
        return started

    def _release(self, n: Notification, oldest_start: float) -> Outcome:
        """Give a claim back unattempted, due again after about as long as the oldest send to
        its recipient has been running (at least 20 ms, at most half the channel's timeout)."""
        self.stats["released"] += 1
        running = time.monotonic() - oldest_start
        wait = (0.5 + self.rand()) * min(max(running, 0.02), self.timeouts.get(n.channel, 10.0) / 2)
        return Outcome(n.id, n.attempts, State(n.state), next_attempt_at=self.clock() + timedelta(seconds=wait),
                       released=True)

    def _done(self, t: asyncio.Task[None]) -> None:
        self._tasks.discard(t)
        self._wake.set()  # a slot is free

    async def _deliver(self, n: Notification) -> None:
        key = (n.channel, n.recipient)
        try:
            result = await self._attempt(n)
        finally:
            busy = self._busy.get(key, {})
            busy.pop(n.id, None)
            if not busy:
                self._busy.pop(key, None)
        self._outcomes.append(self.outcome(n, result))
        self._ensure_writer()

    async def _attempt(self, n: Notification) -> DeliveryResult:
        channel = self.channels.get(n.channel)
        timeout = self.timeouts.get(n.channel, 30.0)
        if channel is None:
            return DeliveryResult.failed(f"no channel {n.channel!r}", permanent=True)
        try:
            return await asyncio.wait_for(channel.send(n), timeout)
        except TimeoutError:
            self.stats["timeouts"] += 1
            return DeliveryResult.failed(f"no answer within {timeout:g} s")
        except Exception as e:  # a channel should not raise; if it does, it is one failed attempt
            logger.exception("channel %s raised on %s", n.channel, n.id)
            return DeliveryResult.failed(f"{type(e).__name__}: {e}")

    def outcome(self, n: Notification, result: DeliveryResult) -> Outcome:
        log = {"notification_id": n.id, "channel": n.channel, "attempt": n.attempts, "case_id": n.case_id}
        if result.ok:
            self.stats["sent"] += 1
            logger.info("sent", extra=log)
            return Outcome(n.id, n.attempts, State.SENT)
        delay = self.policy.next_delay(n.attempts, permanent=result.permanent, rand=self.rand())
        if delay is None:
            self.stats["dead"] += 1
            logger.warning("dead after %d attempts: %s", n.attempts, result.error, extra=log)
            return Outcome(n.id, n.attempts, State.DEAD, result.error)
        self.stats["failed"] += 1
        logger.info("attempt failed, next in %.1f s: %s", delay, result.error, extra=log)
        return Outcome(n.id, n.attempts, State.FAILED, result.error, self.clock() + timedelta(seconds=delay))

    def _ensure_writer(self) -> None:
        if self._outcomes and (self._writer is None or self._writer.done()):
            self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        """The only writer of outcomes: those arriving meanwhile go in the next batch."""
        while self._outcomes:
            batch, self._outcomes = self._outcomes, []
            try:
                await asyncio.to_thread(self.store.finish, batch, now=self.clock())
            except Exception:
                # not written: the claims expire and those notifications are tried again
                logger.exception("could not write %d outcomes", len(batch))

    async def flush(self) -> None:
        """Wait until every outcome gathered so far is written."""
        while self._outcomes or (self._writer is not None and not self._writer.done()):
            self._ensure_writer()
            if self._writer is not None:
                await asyncio.shield(self._writer)

    async def run(self, stop: asyncio.Event, *, grace: float = 5.0) -> None:
        """Until ``stop`` is set: send what is due, then wait for new work, a free slot, or
        the poll interval. On stop, sends in flight get ``grace`` seconds; the rest are
        cancelled (their claims expire and they are tried again later)."""
        self._wake = asyncio.Event()  # bound to this loop
        stopper = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                try:
                    await self.dispatch_due()
                except Exception:
                    logger.exception("could not claim due notifications")
                self._wake.clear()
                waker = asyncio.create_task(self._wake.wait())
                await asyncio.wait({waker, stopper}, timeout=self.poll, return_when=asyncio.FIRST_COMPLETED)
                waker.cancel()
        finally:
            stopper.cancel()
            await self.shutdown(grace)

    async def shutdown(self, grace: float = 5.0) -> None:
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self.flush()

    async def run_until_idle(self, *, timeout: float = 30.0) -> None:
        """Send until nothing is due now and nothing is in flight (tests, the digest command);
        retries scheduled for later are left to the worker."""
        async def loop() -> None:
            while True:
                n = await self.dispatch_due()
                if self._tasks:
                    await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
                    continue
                await self.flush()
                if n == 0:
                    return

        await asyncio.wait_for(loop(), timeout)
