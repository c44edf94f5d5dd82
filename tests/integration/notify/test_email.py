"""Email through a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.notify.adapters.sql import set_contact
from services.notify.bootstrap import bootstrap
from tests.unit.notify.builders import evidence_shared, opened, responded

from .conftest import SmtpSink, free_port, settings_for, until
from .harness import record, running, settled

pytestmark = pytest.mark.integration


def test_insurer_email_in_chinese_with_text_and_html(smtp: tuple[SmtpSink, int], engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sink, port = smtp
    app = bootstrap(engine=engine, settings=settings_for(tmp_path, smtp_host="127.0.0.1", smtp_port=port))

    async def go() -> None:
        async with running(app):
            ns = record(app, evidence_shared())
            await settled(app, [n.id for n in ns])

    asyncio.run(go())
    (msg,) = sink.to("claims@picc.example")
    assert msg["Subject"] == "【衔接】案件 XJ-2026-0001 的调解方案与证据"
    assert msg["From"] == "Xianjie <noreply@xianjie.example>"
    assert msg["Auto-Submitted"] == "auto-generated" and msg["X-Xianjie-Case"] == "XJ-2026-0001"
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "http://127.0.0.1:8000/api/v1/cases/case-1/evidence-packet" in text and "两单之间的合理衔接" in text
    assert '<a href="http://127.0.0.1:8000/api/v1/cases/case-1/evidence-packet">' in html
    n = next(n for n in app.store.for_case("case-1") if n.channel == "email")
    assert msg["Message-ID"] == f"<{n.id}@notify.xianjie>" and n.state == "sent" and n.sent_at is not None
    assert sink.envelopes[0] == ("noreply@xianjie.example", ["claims@picc.example"])


def test_email_in_the_recipients_language(smtp: tuple[SmtpSink, int], engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sink, port = smtp
    set_contact(engine, "PICC", lang="en")
    app = bootstrap(engine=engine, settings=settings_for(tmp_path, smtp_host="127.0.0.1", smtp_port=port, staff_lang="en"))

    async def go() -> None:
        async with running(app):
            ids = [n.id for n in record(app, opened())] + [n.id for n in record(app, responded())]
            await settled(app, ids)

    asyncio.run(go())
    assert sink.to("claims@picc.example")[0]["Subject"] == "[Xianjie] New insurance dispute case XJ-2026-0001"
    assert sink.to("wang@mediation.example")[0]["Subject"] == "[Xianjie] Case XJ-2026-0001: the insurer has rejected"


def test_connections_are_reused(smtp: tuple[SmtpSink, int], engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sink, port = smtp
    app = bootstrap(engine=engine, settings=settings_for(tmp_path, smtp_host="127.0.0.1", smtp_port=port, smtp_connections=2))

    async def go() -> None:
        async with running(app):
            ids = []
            for k in range(12):
                ids += [n.id for n in record(app, opened(case_id=f"c{k}", case_number=f"XJ-{k}", rider_phone=None))]
            await settled(app, ids)

    asyncio.run(go())
    assert len(sink.messages) == 12
    assert len(sink.peers) <= 2


def test_refused_recipient_is_dead_at_once(smtp: tuple[SmtpSink, int], engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sink, port = smtp
    sink.refuse.add("claims@picc.example")
    app = bootstrap(engine=engine, settings=settings_for(tmp_path, smtp_host="127.0.0.1", smtp_port=port))

    async def go() -> None:
        async with running(app):
            ids = [n.id for n in record(app, opened(rider_phone=None))]
            await settled(app, ids)

    asyncio.run(go())
    (n,) = app.store.dead()
    assert n.attempts == 1 and "550" in (n.last_error or "")


def test_smtp_server_down_is_retried_then_delivered(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from aiosmtpd.controller import Controller

    port = free_port()
    sink = SmtpSink()
    app = bootstrap(engine=engine, settings=settings_for(tmp_path, smtp_host="127.0.0.1", smtp_port=port, notify_max_attempts=30))

    async def go() -> None:
        async with running(app):
            (n,) = record(app, opened(rider_phone=None))
            await until(lambda: app.store.get(n.id).attempts >= 2)
            assert app.store.get(n.id).state == "failed"
            controller = Controller(sink, hostname="127.0.0.1", port=port)
            controller.start()
            try:
                await settled(app, [n.id])
            finally:
                controller.stop()

    asyncio.run(go())
    assert len(sink.messages) == 1
    assert [n.state for n in app.store.for_case("case-1")] == ["sent"]
