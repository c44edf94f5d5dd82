"""The notifications API as the mediation app mounts it (auth injected), and what the rider's
status page is given."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi import FastAPI, Header, HTTPException
from fastapi.testclient import TestClient

from services.notify.adapters.channels.fake import RecordingChannel
from services.notify.bootstrap import bootstrap
from services.notify.domain.model import DeliveryResult
from services.notify.entrypoints.api import make_router, notifications_for_case
from tests.unit.notify.builders import opened

from .conftest import settings_for
from .harness import record

pytestmark = pytest.mark.integration


def require_mediator(x_role: str | None = Header(default=None)) -> str:
    if x_role is None:
        raise HTTPException(401, "sign in")
    if x_role != "mediator":
        raise HTTPException(403, "mediators only")
    return x_role


def require_case_reader(case_id: str, x_role: str | None = Header(default=None)) -> str:
    if x_role is None:
        raise HTTPException(401, "sign in")
    if x_role not in ("mediator", "insurer:PICC"):
        raise HTTPException(403, "not your case")
    return x_role


@pytest.fixture
def world(engine, tmp_path: Path):  # type: ignore[no-untyped-def]
    email = RecordingChannel(script=[DeliveryResult.failed("550 no such mailbox", permanent=True)])
    sms = RecordingChannel()
    app = bootstrap(engine=engine, settings=settings_for(tmp_path), channels={"email": email, "sms": sms, "webhook": RecordingChannel()})
    record(app, opened())
    asyncio.run(app.dispatcher.run_until_idle())
    web = FastAPI()
    web.state.engine = engine
    web.include_router(make_router(require_mediator, require_case_reader))
    return app, TestClient(web), email


def test_case_notifications_with_their_state(world) -> None:  # type: ignore[no-untyped-def]
    _, client, _ = world
    r = client.get("/api/v1/cases/case-1/notifications", headers={"x-role": "insurer:PICC"})
    assert r.status_code == 200
    by_channel = {n["channel"]: n for n in r.json()}
    assert by_channel["sms"]["state"] == "sent" and by_channel["sms"]["recipient"] == "138****8000"
    assert by_channel["email"]["state"] == "dead" and "550" in by_channel["email"]["last_error"]
    assert by_channel["email"]["recipient"] == "claims@picc.example" and by_channel["email"]["attempts"] == 1
    assert client.get("/api/v1/cases/case-1/notifications").status_code == 401
    assert client.get("/api/v1/cases/case-1/notifications", headers={"x-role": "insurer:CPIC"}).status_code == 403


def test_dead_letters_and_replay(world) -> None:  # type: ignore[no-untyped-def]
    app, client, email = world
    assert client.get("/api/v1/notifications/dead", headers={"x-role": "insurer:PICC"}).status_code == 403
    dead = client.get("/api/v1/notifications/dead", headers={"x-role": "mediator"}).json()
    assert [(d["channel"], d["case_number"]) for d in dead] == [("email", "XJ-2026-0001")]
    nid = dead[0]["id"]
    r = client.post(f"/api/v1/notifications/{nid}/replay", headers={"x-role": "mediator"})
    assert r.status_code == 202 and r.json()["state"] == "pending"
    assert client.post(f"/api/v1/notifications/{nid}/replay", headers={"x-role": "mediator"}).status_code == 409
    assert client.post("/api/v1/notifications/nope/replay", headers={"x-role": "mediator"}).status_code == 404
    assert client.post(f"/api/v1/notifications/{nid}/replay").status_code == 401
    asyncio.run(app.dispatcher.run_until_idle())  # the mailbox exists now: the script is spent
    assert app.store.get(nid).state == "sent" and len(email.sent) == 1
    assert client.get("/api/v1/notifications/dead", headers={"x-role": "mediator"}).json() == []


def test_openapi_documents_the_routes(world) -> None:  # type: ignore[no-untyped-def]
    _, client, _ = world
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/cases/{case_id}/notifications", "/api/v1/notifications/dead",
            "/api/v1/notifications/{notification_id}/replay"} <= paths.keys()


def test_what_the_rider_status_page_shows(world, engine) -> None:  # type: ignore[no-untyped-def]
    rows = notifications_for_case(engine, "case-1")
    assert len(rows) == 1
    (sms,) = rows
    assert set(sms) == {"channel", "text", "to", "lang", "state", "created_at", "sent_at"}
    assert sms["channel"] == "sms" and sms["to"] == "138****8000" and sms["state"] == "sent"
    assert "XJ-2026-0001" in sms["text"] and sms["sent_at"]
    assert notifications_for_case(engine, "nope") == []
