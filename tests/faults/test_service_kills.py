"""Group 2: each service SIGKILLed at random moments of the end-to-end seed case, ten times each.

The three services run as OS processes on a Kafka broker and a PostgreSQL database of the test's
own. The seed case's feeds are replayed once; then case after case is taken through its whole
life -- opened, evidence requested, evidence ready, accepted by the insurer, resolved -- by a
driver that behaves like a patient mediator (a request that got no answer is checked before it is
repeated, so a lost answer never opens a second case). While each case runs, one service is killed
at a random moment of it (uniform over the time the first, undisturbed case took) and started again
at once. A first case runs without
a kill and says which webhooks a case brings the insurer. Afterwards: every case is resolved, the
outbox is drained, every case event is consumed (committed by notify's group), every notification
is sent, and the insurer's endpoint got each of a case's webhooks from exactly one notification."""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from services.embedded import free_port
from services.trajectory.entrypoints.replay import ensure_topics
from shared import topics
from tests.integration.kafka.procs import (
    WebhookReceiver,
    base_env,
    cli,
    end_offsets,
    group_lag,
    processes,
    readyz,
    wait,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "tests" / "data" / "scenarios" / "seed-case-between"
RIDER = "R-LIMING"
INCIDENT = json.loads((SEED / "incidents.jsonl").read_text().splitlines()[0])
SERVICES = {"trajectory": ("services.trajectory", "worker"), "mediation": ("services", "serve"),
            "notify": ("services.notify", "worker")}
KILLS_EACH = int(os.environ.get("XJ_FAULT_KILLS", "10"))


def case_body(claim: str) -> dict[str, Any]:
    return {
        "rider": {"id": RIDER, "name": "李明", "phone": "13800138000"},
        "insurer_code": "PICC", "policy_number": "PICC-2025-0001", "claim_number": claim,
        "incident": {"at": INCIDENT["at"], "location": INCIDENT["location"],
                     "description": "雨天摔倒，手部骨折 fell in the rain", "injury": "hand fracture"},
        "denial_reason": "事发时间与订单配送状态相差15分钟",
        "consent": {"given": True, "at": "2025-05-20T10:00:00+08:00", "method": "written"},
    }


class Patient:
    """HTTP as a mediator at a desk does it: no answer (refused, reset, 5xx) means wait a moment and
    look before trying again."""

    def __init__(self, base: str, token: str) -> None:
        self.http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        self.unanswered = 0

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response | None:
        try:
            r = self.http.request(method, path, **kw)
        except httpx.TransportError:
            r = None
        if r is None or r.status_code >= 500:
            self.unanswered += 1
            time.sleep(0.3)
            return None
        return r

    def get(self, path: str, **kw: Any) -> Any:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            r = self.call("GET", path, **kw)
            if r is not None:
                assert r.status_code == 200, r.text
                return r.json()
        raise AssertionError(f"GET {path}: no answer within 120 s")

    def status(self, cid: str) -> str:
        return str(self.get(f"/api/v1/cases/{cid}")["status"])

    def until(self, what: str, done: Any, act: Any, timeout: float = 120) -> Any:
        """``act()`` until ``done()`` says the effect is there (checked after every unanswered try)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = done()
            if got:
                return got
            r = act()
            if r is not None:
                assert r.status_code < 400, f"{what}: {r.status_code} {r.text}"
                got = done()
                if got:
                    return got
        raise AssertionError(f"{what}: not done within {timeout:.0f} s")


@pytest.mark.faults_full
def test_each_service_killed_ten_times_during_the_seed_case(private_kafka, fresh_database, tmp_path: Path,
                                                            reliability) -> None:
    url = fresh_database("postgresql")
    port = free_port()
    env = base_env(XJ_DATABASE_URL=url, XJ_DATA_DIR=str(tmp_path / "var"), XJ_KAFKA_BOOTSTRAP=private_kafka.bootstrap,
                   XJ_BUS="kafka", XJ_HTTP_PORT=str(port), XJ_PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
                   XJ_WORKER_GROUP=f"xj-kill-{uuid.uuid4().hex[:8]}", XJ_GAP_SETTLE_S="0.2", XJ_NOTIFY_POLL="0.05")
    ensure_topics(private_kafka.bootstrap, (*topics.ALL, *map(topics.dead_letter, topics.ALL)), 6)
    mediator = cli(env, "services.mediation", "users", "add", "--role", "mediator", "--name", "王调解")
    insurer = cli(env, "services.mediation", "users", "add", "--role", "insurer", "--name", "PICC claims",
                  "--insurer", "PICC")
    secret = "whsec_" + base64.b64encode(uuid.uuid4().bytes + uuid.uuid4().bytes).decode()
    base = f"http://127.0.0.1:{port}"
    rng = random.Random(20261129)
    engine = sa.create_engine(url)
    kills: Counter[str] = Counter()
    restarts: list[float] = []
    cases: dict[str, str] = {}  # case id -> the service killed while it ran ("" for none)
    with WebhookReceiver() as hooks, processes(tmp_path, env) as procs:
        running = {name: procs.start(name, *args) for name, args in SERVICES.items()}

        def ready() -> bool:
            return readyz(base)

        wait("mediation ready", ready, 60, procs.check_alive)
        wait("notify running", lambda: "notify worker running" in running["notify"].log.read_text(errors="replace"),
             60, procs.check_alive)
        r = subprocess.run([sys.executable, "-m", "services.trajectory", "replay", str(SEED), "--speedup", "0"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        m, ins = Patient(base, mediator), Patient(base, insurer)
        r2 = m.call("PUT", "/api/v1/insurers/PICC/webhook", json={"url": f"{hooks.url}/picc", "secret": secret})
        assert r2 is not None and r2.status_code == 200, r2 and r2.text

        def killer(name: str, after: float, n: int) -> None:
            time.sleep(after)
            procs.kill(running[name])
            t0 = time.monotonic()
            running[name] = procs.start(f"{name}-{n}", *SERVICES[name])
            kills[name] += 1
            if name == "mediation":
                wait("mediation back", ready, 60)
            restarts.append(time.monotonic() - t0)

        plan = [""] + [name for _ in range(KILLS_EACH) for name in SERVICES]
        undisturbed = 0.0
        for n, victim in enumerate(plan):
            claim = f"CLM-KILL-{n:03d}"
            thread = None
            began = time.monotonic()
            if victim:
                at = rng.uniform(0.0, undisturbed)
                thread = threading.Thread(target=killer, args=(victim, at, n), daemon=True)
                thread.start()

            def found(claim: str = claim) -> str | None:
                page = m.get("/api/v1/cases", params={"q": claim})
                hits = [c["case_id"] for c in page["items"] if c.get("claim_number") == claim]
                assert len(hits) <= 1, f"{claim} opened {len(hits)} times"
                return hits[0] if hits else None

            cid = m.until("open", found, lambda claim=claim: m.call("POST", "/api/v1/cases", json=case_body(claim)))
            cases[cid] = victim
            m.until("evidence requested", lambda cid=cid: m.status(cid) != "opened",
                    lambda cid=cid: m.call("POST", f"/api/v1/cases/{cid}/evidence-requests"))
            wait(f"{cid} evidence ready", lambda cid=cid: m.status(cid) == "evidence_ready", 120)
            # the mediator reviews and sends the proposal: the insurer's evidence webhook comes then
            m.until("under review", lambda cid=cid: m.status(cid) in ("under_review", "proposal_sent"),
                    lambda cid=cid: m.call("POST", f"/api/v1/cases/{cid}/transitions", json={"to": "under_review"}))
            m.until("proposal sent", lambda cid=cid: m.status(cid) == "proposal_sent",
                    lambda cid=cid: m.call("POST", f"/api/v1/cases/{cid}/transitions", json={"to": "proposal_sent"}))
            ins.until("accepted", lambda cid=cid: m.status(cid) == "insurer_accepted",
                      lambda cid=cid: ins.call("POST", f"/api/v1/cases/{cid}/insurer-response",
                                               json={"decision": "accept", "reason": "连续配送的合理衔接"}))
            m.until("resolved", lambda cid=cid: m.status(cid) == "resolved",
                    lambda cid=cid: m.call("POST", f"/api/v1/cases/{cid}/transitions",
                                           json={"to": "resolved", "reason": "insurer paid"}))
            if not victim:
                undisturbed = time.monotonic() - began
            if thread is not None:
                thread.join(90)
                assert not thread.is_alive(), f"{victim} was not restarted"
            procs.check_alive()

        def settled() -> bool:
            # every case event consumed (a notify just restarted may still be joining its group)
            if group_lag(private_kafka.bootstrap, "notify", [topics.CASE_EVENTS]) or \
                    group_lag(private_kafka.bootstrap, "mediation", [topics.ASSESSMENT_READY]):
                return False
            with engine.connect() as c:
                unpublished = c.execute(sa.text("SELECT count(*) FROM mediation_outbox WHERE published_at IS NULL"))
                due = c.execute(sa.text("SELECT count(*) FROM notify_notification WHERE state IN ('pending', 'failed')"))
                return (unpublished.scalar() or 0) == 0 and (due.scalar() or 0) == 0

        wait("outbox drained and every notification sent", settled, 120, procs.check_alive)
        time.sleep(1.0)  # a webhook in flight lands
        received = list(hooks.received)
        dead_letters = {t: sum(end_offsets(private_kafka.bootstrap, [topics.dead_letter(t)]).values())
                        for t in (topics.CASE_EVENTS, topics.ASSESSMENT_READY, topics.ASSESSMENT_REQUESTED)}

    with engine.connect() as c:
        recorded = defaultdict(list)
        for case_id, event_type, role, channel in c.execute(sa.text(
                "SELECT n.case_id, e.event_type, n.role, n.channel FROM notify_notification n "
                "LEFT JOIN notify_consumed_event e ON e.event_id = n.event_id")):
            recorded[case_id].append((event_type, role, channel))
        states = Counter(r[0] for r in c.execute(sa.text(
            "SELECT state FROM notify_notification WHERE case_id IN :ids").bindparams(
            sa.bindparam("ids", expanding=True)), {"ids": list(cases)}))
        final = dict(c.execute(sa.text("SELECT id, status FROM mediation_case")).all())
        unpublished = c.execute(sa.text("SELECT count(*) FROM mediation_outbox WHERE published_at IS NULL")).scalar()
    engine.dispose()

    per: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))  # case -> type -> webhook ids
    raw: Counter[tuple[str, str]] = Counter()
    for h in received:
        body = json.loads(h.body)
        cid = next((c for c in cases if c in h.body.decode(errors="replace")), None)
        if cid is None:
            continue
        per[cid][body.get("type", "?")].add(h.headers.get("webhook-id", ""))
        raw[(cid, body.get("type", "?"))] += 1
    control = next(c for c, v in cases.items() if not v)
    expected_types = set(per[control])
    assert {"case.opened", "case.evidence_shared"} <= expected_types, expected_types
    wrong_status = {c: final.get(c) for c in cases if final.get(c) != "resolved"}
    gaps = {c: (cases[c], sorted(expected_types - set(per[c])), sorted(recorded[c])) for c in cases
            if expected_types - set(per[c])}
    missing = sum(len(v[1]) for v in gaps.values())
    twice = sum(1 for c in cases for ids in per[c].values() if len(ids) > 1)
    redelivered = sum(n - 1 for n in raw.values() if n > 1)
    lost = len(wrong_status) + missing + int(unpublished or 0) + states.get("dead", 0)
    reliability.record(
        2, f"each service SIGKILLed {KILLS_EACH} times during the seed case",
        load=f"{len(cases)} seed cases one after another, each opened → evidence → accepted → resolved over HTTP; "
             "three processes on Kafka + PostgreSQL",
        injected=f"SIGKILL at a random moment of the case (uniform over the {undisturbed:.1f} s an undisturbed one "
                 f"took) and immediate restart: "
                 f"{', '.join(f'{k} ×{v}' for k, v in sorted(kills.items()))}",
        lost=lost, duplicated=twice, leaked=0,
        detail=f"{len(cases) - len(wrong_status)}/{len(cases)} resolved; outbox unpublished {unpublished}; "
               f"notifications {dict(states)}; each case's {len(expected_types)} webhook types from one "
               f"notification each ({redelivered} redeliveries of the same webhook-id); {m.unanswered + ins.unanswered} "
               f"requests unanswered and checked before retrying; restart to ready max {max(restarts, default=0):.1f} s")
    assert sum(kills.values()) == KILLS_EACH * len(SERVICES)
    assert not wrong_status, wrong_status
    assert lost == 0 and twice == 0, (gaps, unpublished, states, dead_letters)
