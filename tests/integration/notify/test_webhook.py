"""Webhooks to a real HTTP receiver on loopback: signatures checked by the independent
``standardwebhooks`` implementation, a receiver that fails the first attempts, one that hangs,
secret rotation, an endpoint that is gone."""

from __future__ import annotations

import asyncio
import base64
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.notify.adapters.sql import remove_webhook, set_webhook, webhook_info
from services.notify.bootstrap import bootstrap
from tests.unit.notify.builders import changed, evidence_shared, opened

from .conftest import Receiver, settings_for, until
from .harness import record, running, settled

pytestmark = pytest.mark.integration


def secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def hooks(app, ns):  # type: ignore[no-untyped-def]
    return [n for n in ns if n.channel == "webhook"]


def test_signed_per_standard_webhooks_and_verified_independently(receiver: Receiver, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s = secret()
    set_webhook(engine, "PICC", receiver.url("/picc"), s)
    app = bootstrap(engine=engine, settings=settings_for(tmp_path))

    async def go() -> None:
        async with running(app):
            ns = record(app, evidence_shared(), event_id="ev-ready")
            await settled(app, [n.id for n in ns])

    asyncio.run(go())
    (req,) = receiver.at("/picc")
    payload = Webhook(s).verify(req.body, req.headers)
    assert payload["type"] == "case.evidence_shared"
    assert payload["data"]["packet_url"] == "http://127.0.0.1:8000/api/v1/cases/case-1/evidence-packet"
    assert payload["data"]["event_id"] == "ev-ready" and "rider_phone" not in payload["data"]
    (n,) = [n for n in app.store.for_case("case-1") if n.channel == "webhook"]
    assert req.headers["webhook-id"] == n.id and req.headers["content-type"] == "application/json"
    assert abs(int(req.headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 10
    with pytest.raises(WebhookVerificationError):
        Webhook(secret()).verify(req.body, req.headers)


def test_a_receiver_failing_twice_gets_it_on_the_third_attempt(receiver: Receiver, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s = secret()
    receiver.on("/flaky", lambda n: (503 if n <= 2 else 200, 0.0))
    set_webhook(engine, "PICC", receiver.url("/flaky"), s)
    app = bootstrap(engine=engine, settings=settings_for(tmp_path))

    async def go() -> None:
        async with running(app):
            (n,) = hooks(app, record(app, opened()))
            await settled(app, [n.id])

    asyncio.run(go())
    reqs = receiver.at("/flaky")
    assert len(reqs) == 3
    assert len({r.headers["webhook-id"] for r in reqs}) == 1  # one message, three attempts
    for r in reqs:
        Webhook(s).verify(r.body, r.headers)
    (n,) = [n for n in app.store.for_case("case-1") if n.channel == "webhook"]
    assert (n.state, n.attempts) == ("sent", 3) and n.last_error and "503" in n.last_error


def test_a_hanging_receiver_blocks_nobody_times_out_and_is_retried(receiver: Receiver, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # every request to /hang hangs (30 s) until the test lets go; 8 notifications queue for it,
    # and the dispatcher has 4 slots of which at most 2 may go to one recipient
    receiver.on("/hang", lambda n: (200, 30.0))
    set_webhook(engine, "SLOW", receiver.url("/hang"), secret())
    set_webhook(engine, "PICC", receiver.url("/picc"), secret())
    app = bootstrap(engine=engine, settings=settings_for(tmp_path, notify_timeout_webhook=1.0, notify_concurrency=4,
                                     notify_per_recipient=2))

    async def go() -> None:
        async with running(app):
            slow = []
            for k in range(8):
                slow += hooks(app, record(app, opened(case_id=f"c-slow{k}", case_number=f"XJ-S{k}", insurer_code="SLOW",
                                                      rider_phone=None, insurer_email=None)))
            await until(lambda: len(receiver.at("/hang")) == 2)
            others = []
            for k in range(5):
                others += record(app, opened(case_id=f"c{k}", case_number=f"XJ-{k}", rider_phone=None))
            t0 = asyncio.get_running_loop().time()
            await settled(app, [n.id for n in others])
            assert asyncio.get_running_loop().time() - t0 < 0.8  # the hung ones have not even timed out
            assert len(receiver.at("/hang")) == 2  # and no more than two ever went to the hanging peer
            await until(lambda: sum(app.store.get(n.id).state == "failed" for n in slow) >= 1, timeout=3)
            receiver.released.set()  # the peer recovers
            await settled(app, [n.id for n in slow], timeout=10)

    asyncio.run(go())
    slow = [app.store.for_case(f"c-slow{k}")[0] for k in range(8)]
    assert all(n.state == "sent" for n in slow)
    timed_out = [n for n in slow if n.attempts > 1]
    assert len(timed_out) >= 2 and all("no answer within 1 s" in (n.last_error or "") or "timeout" in (n.last_error or "")
                                       for n in timed_out)
    assert len(receiver.at("/picc")) == 5


def test_rotation_signs_with_both_secrets_for_24_hours(receiver: Receiver, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    old, new = secret(), secret()
    t0 = datetime.now(UTC)
    set_webhook(engine, "PICC", receiver.url("/picc"), old, now=t0 - timedelta(days=3))
    set_webhook(engine, "PICC", receiver.url("/picc"), new, now=t0)  # the API's PUT, now
    info = webhook_info(engine, "PICC")
    assert info is not None and info["secrets"] == 2 and new not in str(info) and old not in str(info)
    app = bootstrap(engine=engine, settings=settings_for(tmp_path))

    async def go() -> None:
        async with running(app):
            await settled(app, [n.id for n in hooks(app, record(app, opened()))])
            # a day later (set_webhook back-dated): the old secret no longer signs
            set_webhook(engine, "PICC", receiver.url("/picc"), old, now=t0 - timedelta(days=3))
            set_webhook(engine, "PICC", receiver.url("/picc"), new, now=t0 - timedelta(hours=25))
            await settled(app, [n.id for n in hooks(app, record(app, changed("proposal_sent")))])

    asyncio.run(go())
    during, after = receiver.at("/picc")
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(during.body, during.headers)
    Webhook(new).verify(during.body, during.headers)
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)


def test_gone_endpoint_and_removed_webhook_are_dead_at_once(receiver: Receiver, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    receiver.on("/gone", lambda n: (410, 0.0))
    set_webhook(engine, "PICC", receiver.url("/gone"), secret())
    set_webhook(engine, "CPIC", receiver.url("/cpic"), secret())
    app = bootstrap(engine=engine, settings=settings_for(tmp_path))

    async def go() -> None:
        async with running(app):
            gone = hooks(app, record(app, opened(rider_phone=None)))
            removed = hooks(app, record(app, opened(case_id="c2", case_number="XJ-2", insurer_code="CPIC",
                                                    rider_phone=None)))
            assert remove_webhook(engine, "CPIC")
            await settled(app, [n.id for n in gone + removed])

    asyncio.run(go())
    dead = {n.recipient: n for n in app.store.dead()}
    assert dead["PICC"].attempts == 1 and "410" in (dead["PICC"].last_error or "")
    assert "no webhook configured" in (dead["CPIC"].last_error or "")
    assert receiver.at("/cpic") == []
