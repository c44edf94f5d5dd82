"""The dispatcher on fakes: sends what is due, retries with backoff, dead letters, timeouts,
concurrency, claims that expire."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.notify.domain.model import DeliveryResult

from .fakes import Core, draft

pytestmark = pytest.mark.unit

FAIL = DeliveryResult.failed("HTTP 503")


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_sends_what_is_due_and_records_it() -> None:
    c = Core()
    (nid,) = c.store.record([draft()], now=c.clock())

    async def go() -> None:
        await c.dispatcher().run_until_idle()

    run(go())
    n = c.store.get(nid)
    assert (n.state, n.attempts, n.sent_at, n.next_attempt_at) == ("sent", 1, c.clock(), None)
    assert [x.id for x in c.email.sent] == [nid]


def test_failure_waits_its_backoff_then_retries() -> None:
    c = Core()
    c.email.script = [FAIL]
    (nid,) = c.store.record([draft()], now=c.clock())

    async def go() -> None:
        d = c.dispatcher(rand=0.5)
        await d.run_until_idle()
        n = c.store.get(nid)
        assert (n.state, n.attempts, n.last_error) == ("failed", 1, "HTTP 503")
        assert (n.next_attempt_at - c.clock()).total_seconds() == 5.0  # half of base 10 s
        c.clock.advance(4.9)
        assert await d.dispatch_due() == 0
        c.clock.advance(0.2)
        await d.run_until_idle()

    run(go())
    n = c.store.get(nid)
    assert (n.state, n.attempts) == ("sent", 2)
    assert len(c.email.calls) == 2


def test_dead_after_the_last_attempt() -> None:
    c = Core()
    c.email.script = [FAIL, FAIL, DeliveryResult.failed("HTTP 500")]
    (nid,) = c.store.record([draft()], now=c.clock())

    async def go() -> None:
        d = c.dispatcher(max_attempts=3)
        for _ in range(3):
            await d.run_until_idle()
            c.clock.advance(1000)

    run(go())
    n = c.store.get(nid)
    assert (n.state, n.attempts, n.last_error, n.next_attempt_at) == ("dead", 3, "HTTP 500", None)
    assert [x.id for x in c.store.dead()] == [nid]


def test_permanent_failure_is_dead_at_once() -> None:
    c = Core()
    c.webhook.script = [DeliveryResult.failed("no webhook configured", permanent=True)]
    (nid,) = c.store.record([draft(channel="webhook", recipient="PICC")], now=c.clock())
    run(c.dispatcher().run_until_idle())
    assert (c.store.get(nid).state, c.store.get(nid).attempts) == ("dead", 1)


def test_a_channel_that_raises_is_one_failed_attempt() -> None:
    c = Core()
    c.sms.script = [RuntimeError("boom")]
    (nid,) = c.store.record([draft(channel="sms", recipient="13800138000")], now=c.clock())
    run(c.dispatcher().run_until_idle())
    n = c.store.get(nid)
    assert n.state == "failed" and "RuntimeError: boom" in (n.last_error or "")


def test_a_hanging_send_times_out_without_holding_the_others() -> None:
    c = Core()
    c.webhook.plan("SLOW", [30.0])  # would hang for 30 s
    slow, *fast = c.store.record([draft(channel="webhook", recipient="SLOW"),
                                  *(draft(recipient=f"m{k}@x.example") for k in range(5))], now=c.clock())

    async def go() -> float:
        d = c.dispatcher(timeout=0.3)
        t0 = time.monotonic()
        await d.dispatch_due()
        while len(c.email.sent) < 5:
            await asyncio.sleep(0.005)
        others = time.monotonic() - t0
        await d.run_until_idle()
        return others

    others = run(go())
    assert others < 0.2
    assert all(c.store.get(i).state == "sent" for i in fast)
    n = c.store.get(slow)
    assert n.state == "failed" and n.last_error == "no answer within 0.3 s"


def test_concurrency_bounds_what_is_claimed() -> None:
    c = Core()
    for k in range(5):
        c.email.plan(f"m{k}@x.example", [0.2])
    c.store.record([draft(recipient=f"m{k}@x.example") for k in range(5)], now=c.clock())

    async def go() -> None:
        d = c.dispatcher(concurrency=2)
        assert await d.dispatch_due() == 2
        assert await d.dispatch_due() == 0  # no free slot
        assert d.in_flight == 2
        await d.run_until_idle()

    run(go())
    assert len(c.email.sent) == 5


def test_a_claim_expires_when_its_sender_dies() -> None:
    c = Core()
    (nid,) = c.store.record([draft()], now=c.clock())
    claimed = c.store.claim_due(now=c.clock(), limit=10, lease_s=60, max_attempts=3)
    assert [n.attempts for n in claimed] == [1]
    assert c.store.claim_due(now=c.clock(), limit=10, lease_s=60, max_attempts=3) == []  # leased
    c.clock.advance(61)
    assert [n.attempts for n in c.store.claim_due(now=c.clock(), limit=10, lease_s=60, max_attempts=3)] == [2]
    c.clock.advance(61)
    c.store.claim_due(now=c.clock(), limit=10, lease_s=60, max_attempts=3)
    c.clock.advance(61)
    assert c.store.claim_due(now=c.clock(), limit=10, lease_s=60, max_attempts=3) == []
    n = c.store.get(nid)
    assert n.state == "dead" and "no outcome recorded" in (n.last_error or "")


def test_replayed_notification_goes_again_from_its_first_attempt() -> None:
    c = Core()
    c.email.script = [DeliveryResult.failed("550 mailbox unavailable", permanent=True)]
    (nid,) = c.store.record([draft()], now=c.clock())

    async def go() -> None:
        d = c.dispatcher()
        await d.run_until_idle()
        assert c.store.get(nid).state == "dead"
        c.clock.advance(5)
        r = c.store.replay(nid, now=c.clock())
        assert (r.state, r.attempts) == ("pending", 0)
        await d.run_until_idle()

    run(go())
    n = c.store.get(nid)
    assert (n.state, n.attempts, n.last_error) == ("sent", 1, "550 mailbox unavailable")
    assert c.store.dead() == []


def test_run_stops_when_told_and_keeps_polling_until_then() -> None:
    c = Core()

    async def go() -> None:
        d = c.dispatcher()
        d.poll = 0.01
        stop = asyncio.Event()
        task = asyncio.create_task(d.run(stop))
        await asyncio.sleep(0.03)
        c.store.record([draft()], now=c.clock())
        d.wake()
        for _ in range(100):
            if c.email.sent:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 2)

    run(go())
    assert len(c.email.sent) == 1


def test_one_recipient_never_holds_more_than_its_share_of_slots() -> None:
    c = Core()
    c.webhook.plan("DEAD", [30.0] * 20)  # every send to DEAD hangs
    dead = c.store.record([draft(channel="webhook", recipient="DEAD") for _ in range(20)], now=c.clock())
    fine = c.store.record([draft(recipient=f"m{k}@x.example") for k in range(6)], now=c.clock())

    async def go() -> None:
        d = c.dispatcher(concurrency=4, timeout=5.0)
        d.per_recipient = 2
        d.claim_batch = 1
        for _ in range(50):
            await d.dispatch_due()
            await d.flush()
            if len(c.email.sent) == 6:
                break
            await asyncio.sleep(0.01)
        assert len(c.email.sent) == 6
        assert len(c.webhook.calls) == 2  # only two sends ever went to DEAD
        assert d.stats["released"] >= 1
        await d.shutdown(grace=0)

    run(go())
    assert all(c.store.get(i).state == "sent" for i in fine)
    released = [c.store.get(i) for i in dead if c.store.get(i).attempts == 0]
    assert len(released) >= 17  # given back unattempted: no attempt spent
    assert all(n.state == "pending" and n.next_attempt_at and n.next_attempt_at > c.clock() for n in released)
