"""SMS to a real HTTP gateway on loopback, and to the readable outbox when there is none."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from services.notify.bootstrap import bootstrap
from tests.unit.notify.builders import opened, responded

from .conftest import Receiver, settings_for
from .harness import record, running, settled

pytestmark = pytest.mark.integration


def test_sms_through_the_gateway(receiver: Receiver, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    receiver.on("/sms", lambda n: (502 if n == 1 else 200, 0.0))  # the gateway hiccups once
    app = bootstrap(engine=engine, settings=settings_for(tmp_path, sms_gateway_url=receiver.url("/sms")))

    async def go() -> None:
        async with running(app):
            ns = [n for n in record(app, opened(rider_lang="en")) if n.channel == "sms"]
            await settled(app, [n.id for n in ns])

    asyncio.run(go())
    first, second = receiver.at("/sms")
    body = second.json()
    assert body["phone"] == "13800138000" and body["case_number"] == "XJ-2026-0001"
    assert body["text"].startswith("[Xianjie] Your insurance dispute case XJ-2026-0001 is open.")
    assert "http://127.0.0.1:8000/status?case=XJ-2026-0001&lang=en" in body["text"]
    assert first.json() == body and second.headers["idempotency-key"] == body["id"]
    assert not (tmp_path / "sms-outbox.txt").exists()


def test_sms_to_the_outbox_file_without_a_gateway(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    app = bootstrap(engine=engine, settings=settings_for(tmp_path))

    async def go() -> None:
        async with running(app):
            ids = [n.id for n in record(app, opened()) + record(app, responded("accept"))]
            await settled(app, ids)

    asyncio.run(go())
    text = (tmp_path / "sms-outbox.txt").read_text(encoding="utf-8")
    assert text.count("to 13800138000 · case XJ-2026-0001") == 2
    assert "【衔接】您的理赔争议调解申请已受理，案件编号 XJ-2026-0001" in text
    assert "保险公司已接受您的理赔" in text
    lines = [orjson.loads(x) for x in (tmp_path / "sms-outbox.jsonl").read_bytes().splitlines()]
    assert [x["phone"] for x in lines] == ["13800138000"] * 2 and all(x["at"] for x in lines)
    # without an SMTP server the emails are in a readable outbox too
    mail = (tmp_path / "mail-outbox.txt").read_text(encoding="utf-8")
    assert "To: claims@picc.example" in mail and "To: wang@mediation.example" in mail
