"""End to end on a real Kafka and a real PostgreSQL, the three services as three OS processes:
``python -m services.trajectory worker``, ``python -m services serve`` and
``python -m services.notify worker`` (both with ``XJ_BUS=kafka``), one database and one data folder.
The seed case's feeds are replayed into Kafka, the case is opened over HTTP with the rider's
consent, evidence is requested and becomes ready, and the insurer's webhook arrives with a valid
Standard Webhooks signature."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.embedded import free_port
from services.trajectory.adapters.store import FeedStore
from services.trajectory.entrypoints.replay import ensure_topics
from shared import topics
from tests.integration.kafka.procs import (
    ROOT,
    WebhookReceiver,
    base_env,
    cli,
    processes,
    readyz,
    start_group_at_end,
    start_worker_at_end,
    wait,
)

pytestmark = pytest.mark.integration

SEED = ROOT / "tests" / "data" / "scenarios" / "seed-case-between"
INCIDENT = json.loads((SEED / "incidents.jsonl").read_text().splitlines()[0])
RIDER = "R-LIMING"


def case_body() -> dict:
    return {
        "rider": {"id": RIDER, "name": "李明", "phone": "13800138000"},
        "insurer_code": "PICC", "policy_number": "PICC-2025-0001", "claim_number": "CLM-88",
        "incident": {"at": INCIDENT["at"], "location": INCIDENT["location"],
                     "description": "雨天摔倒，手部骨折 fell in the rain", "injury": "hand fracture"},
        "denial_reason": "事发时间与订单配送状态相差15分钟",
        "consent": {"given": True, "at": "2025-05-20T10:00:00+08:00", "method": "written"},
    }


def test_seed_case_through_three_processes(kafka_bootstrap: str, fresh_database, tmp_path: Path) -> None:
    began = time.monotonic()
    url = fresh_database("postgresql")
    port = free_port()
    env = base_env(XJ_DATABASE_URL=url, XJ_DATA_DIR=str(tmp_path / "var"), XJ_KAFKA_BOOTSTRAP=kafka_bootstrap,
                   XJ_BUS="kafka", XJ_HTTP_PORT=str(port), XJ_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
                   XJ_WORKER_GROUP=f"xj-e2e-{uuid.uuid4().hex[:8]}", XJ_GAP_SETTLE_S="0.2",
                   XJ_NOTIFY_POLL="0.05")
    ensure_topics(kafka_bootstrap, (*topics.ALL, *map(topics.dead_letter, topics.ALL)), 6)
    # Every group starts at the topics' end: a development broker's history (other databases'
    # cases) is not this run's. The broker refuses while a group has members; then it keeps its offsets.
    assert start_worker_at_end(kafka_bootstrap, env["XJ_WORKER_GROUP"])
    start_group_at_end(kafka_bootstrap, "mediation", (topics.ASSESSMENT_READY,))
    start_group_at_end(kafka_bootstrap, "notify", (topics.CASE_EVENTS,))

    # users through the CLI (which also brings every service's tables up to date, once)
    mediator = cli(env, "services.mediation", "users", "add", "--role", "mediator", "--name", "王调解")
    insurer = cli(env, "services.mediation", "users", "add", "--role", "insurer", "--name", "PICC claims",
                  "--insurer", "PICC")
    assert mediator and insurer and mediator != insurer

    secret = "whsec_" + base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode()
    engine = create_engine(url)
    with WebhookReceiver() as hooks, processes(tmp_path, env) as procs:
        procs.start("trajectory", "services.trajectory", "worker")
        procs.start("mediation", "services", "serve")
        notify = procs.start("notify", "services.notify", "worker")
        base = f"http://127.0.0.1:{port}"

        wait("mediation /readyz", lambda: readyz(base), 40, procs.check_alive)
        wait("notify worker running", lambda: "notify worker running" in notify.log.read_text(errors="replace"),
             40, procs.check_alive)

        r = subprocess.run([sys.executable, "-m", "services.trajectory", "replay", str(SEED), "--speedup", "0"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr

        def stored() -> tuple[int, int] | None:
            with engine.connect() as c:
                pings = FeedStore(engine).pings(RIDER)
                events = c.execute(text("SELECT count(*) FROM trajectory_platform_event WHERE rider_id = :r"),
                                   {"r": RIDER}).scalar() or 0
            return (pings, events) if pings >= 890 and events >= 10 else None  # 912 lines, 900 distinct pings

        pings, events = wait("the worker stored the replayed feeds", stored, 60, procs.check_alive)

        auth = {"Authorization": f"Bearer {mediator}"}
        with httpx.Client(base_url=base, headers=auth, timeout=30) as m:
            r = m.put("/api/v1/insurers/PICC/webhook", json={"url": f"{hooks.url}/picc", "secret": secret})
            assert r.status_code == 200, r.text
            r = m.post("/api/v1/cases", json=case_body())
            assert r.status_code == 201, r.text
            cid = r.json()["case_id"]
            assert m.post(f"/api/v1/cases/{cid}/evidence-requests").status_code == 202
            case = wait("evidence_ready", lambda: (c := m.get(f"/api/v1/cases/{cid}").json())["status"]
                        == "evidence_ready" and c, 40, procs.check_alive)
            assert case["phase"] == "connecting"
            packet = m.get(f"/api/v1/cases/{cid}/evidence-packet").json()
            assert packet["assessment"]["continuous_delivery"] is True
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {insurer}"}, timeout=30) as ins:
            # the mediator reviews first: the evidence reaches the insurer with the proposal
            assert ins.get(f"/api/v1/cases/{cid}/evidence-packet").status_code == 403
            with httpx.Client(base_url=base, headers=auth, timeout=30) as m:
                for to in ("under_review", "proposal_sent"):
                    assert m.post(f"/api/v1/cases/{cid}/transitions", json={"to": to}).status_code == 200
            assert ins.get(f"/api/v1/cases/{cid}/evidence-packet").status_code == 200

        def evidence_hook():  # type: ignore[no-untyped-def]
            for h in list(hooks.received):
                body = json.loads(h.body)
                if body.get("type") == "case.evidence_shared":
                    return h, body
            return None

        hook, payload = wait("the insurer's case.evidence_shared webhook", evidence_hook, 30, procs.check_alive)
        Webhook(secret).verify(hook.body, hook.headers)  # raises WebhookVerificationError when invalid
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(hook.body.replace(b"evidence_shared", b"evidence_xxxxxx", 1), hook.headers)
        assert hook.path == "/picc" and cid in json.dumps(payload)
        types = {json.loads(h.body).get("type") for h in hooks.received}
        assert "case.opened" in types
        with engine.connect() as c:
            holds = c.execute(text("SELECT count(*) FROM trajectory_evidence_hold WHERE rider_id = :r"),
                              {"r": RIDER}).scalar()
        assert holds == 1
        procs.check_alive()
    engine.dispose()
    print(f"e2e: {pings} pings, {events} events stored; evidence ready and webhook verified in "
          f"{time.monotonic() - began:.1f} s")
