"""The worker as ``python -m services up`` runs it: on the in-process bus, SQLite, a real SMTP
server and a real HTTP receiver. Duplicate deliveries, bad messages, restarts; and the
commands ``python -m services.notify worker`` and ``digest``."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from services.notify.adapters.sql import SqlNotificationStore, set_webhook
from services.notify.bootstrap import bootstrap
from services.notify.entrypoints.worker import run
from shared.bus import InMemoryBus
from shared.topics import CASE_EVENTS, dead_letter
from tests.unit.notify.builders import (
    envelope,
    evidence_ready,
    evidence_shared,
    opened,
    overdue,
    responded,
)

from .conftest import Receiver, SmtpSink, settings_for, until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()


def test_events_through_the_bus_once_each_even_when_delivered_twice(
        smtp: tuple[SmtpSink, int], receiver: Receiver, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sink, port = smtp
    set_webhook(engine, "PICC", receiver.url("/picc"), SECRET)
    settings = settings_for(tmp_path, smtp_host="127.0.0.1", smtp_port=port)
    # EvidenceReady tells the rider only (the mediator reviews first); EvidenceShared the insurer
    envs = [envelope(opened()), envelope(evidence_ready()), envelope(evidence_shared()), envelope(responded())]
    store = SqlNotificationStore(engine)

    async def session(messages: list[bytes]) -> None:
        bus = InMemoryBus()
        stop = asyncio.Event()
        task = asyncio.create_task(run(bus, engine, settings, stop))
        await asyncio.sleep(0)
        await bus.start()
        for raw in messages:
            await bus.publish(CASE_EVENTS, "case-1", raw)
        await bus.drain(5)
        await until(lambda: all(n.state == "sent" for n in store.for_case("case-1")))
        await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(task, 5)
        await bus.stop()
        if b"not an event" in messages:
            (dlq,) = bus.logs[dead_letter(CASE_EVENTS)]
            assert dlq.value == b"not an event" and dlq.header("group") == b"notify"

    raws = [e.to_bytes() for e in envs]
    asyncio.run(session([raws[0], raws[0], b"not an event", raws[1], raws[2], raws[3], raws[1], raws[2]]))
    rows = store.for_case("case-1")
    assert sorted((n.template, n.channel) for n in rows) == sorted([
        ("rider_case_opened", "sms"), ("insurer_case_opened", "email"), ("webhook", "webhook"),
        ("rider_evidence_ready", "sms"), ("insurer_evidence_shared", "email"), ("webhook", "webhook"),
        ("rider_insurer_responded", "sms"), ("mediator_insurer_responded", "email")])
    assert len(sink.messages) == 3 and len(receiver.at("/picc")) == 2
    for r in receiver.at("/picc"):
        Webhook(SECRET).verify(r.body, r.headers)
    assert (tmp_path / "sms-outbox.txt").read_text(encoding="utf-8").count("to 13800138000") == 3

    # a restart replays the topic from the start (a lost consumer position): nothing new is sent
    asyncio.run(session(raws))
    assert len(store.for_case("case-1")) == 8 and len(sink.messages) == 3 and len(receiver.at("/picc")) == 2


def _env(tmp_path: Path, **kw: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XJ_")}
    env.update({"XJ_DATA_DIR": str(tmp_path), "XJ_DATABASE_URL": f"sqlite:///{tmp_path / 'notify.db'}",
                "PYTHONPATH": str(ROOT), **kw})
    return env


def test_digest_command_sends_each_mediator_one_digest_a_day(
        smtp: tuple[SmtpSink, int], engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
        capsys: pytest.CaptureFixture[str]) -> None:
    from services.notify.entrypoints.cli import main

    sink, port = smtp
    app = bootstrap(engine=engine, settings=settings_for(tmp_path, smtp_host="127.0.0.1", smtp_port=port))
    for k, mediator in enumerate(["wang@m.example", "wang@m.example", "li@m.example"]):
        app.recorder.record_envelope(envelope(overdue(case_id=f"c{k}", case_number=f"XJ-{k}", mediator_email=mediator)))
    for k, v in _env(tmp_path, XJ_SMTP_HOST="127.0.0.1", XJ_SMTP_PORT=str(port), XJ_STAFF_LANG="en").items():
        if k.startswith("XJ_"):
            monkeypatch.setenv(k, v)
    assert main(["digest", "--day", "2026-11-30"]) == 0
    assert "digest of 2026-11-30: 2 recorded, 2 sent" in capsys.readouterr().out
    # (the command also sends whatever else is due: here the three overdue alerts)
    digests = [m for m in sink.messages if m["Subject"].startswith("[Xianjie] Overdue cases on")]
    assert sorted(m["To"] for m in digests) == ["li@m.example", "wang@m.example"]
    wang = next(m for m in digests if m["To"] == "wang@m.example")
    assert wang["Subject"] == "[Xianjie] Overdue cases on 2026-11-30: 2"
    body = wang.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "XJ-0" in body and "XJ-1" in body and "XJ-2" not in body
    sent = len(sink.messages)
    assert main(["digest", "--day", "2026-11-30"]) == 0
    assert "0 recorded" in capsys.readouterr().out and len(sink.messages) == sent


def test_worker_command_starts_and_stops_cleanly(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "services.notify", "worker"], cwd=ROOT,
                            env=_env(tmp_path, XJ_BUS="memory"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "notify.db").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "notify worker running" in err
