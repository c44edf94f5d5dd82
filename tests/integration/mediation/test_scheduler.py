"""The overdue scheduler with two mediation processes (two engines, two schedulers, one database):
one overdue case gives exactly one CaseOverdue, and notify's digests (recorded by two workers)
give one digest with one line for it. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime

import pytest

from services.mediation.adapters import migrate
from services.mediation.adapters.tables import OutboxRow
from services.mediation.domain.model import Role, Status
from services.mediation.entrypoints.scheduler import run as run_scheduler
from services.mediation.service_layer.cases import Mediation
from services.mediation.service_layer.office import Office
from services.mediation.settings import MediationSettings
from shared.db import make_engine
from shared.events import Envelope

pytestmark = pytest.mark.integration

CASE = {
    "rider": {"id": "R-1", "name": "李明", "phone": "13800138000"}, "insurer_code": "PICC",
    "policy_number": "P-1", "claim_number": "C-1", "incident": {"at": "2025-05-14T14:10:00+08:00"},
    "consent": {"given": True, "method": "written"},
}


def _overdue_events(engine) -> list[Envelope]:
    from sqlmodel import Session, select

    with Session(engine) as s:
        envs = [Envelope.from_bytes(r.payload) for r in s.exec(select(OutboxRow).order_by(OutboxRow.seq)).all()]
    return [e for e in envs if e.type == "CaseOverdue"]


def test_two_schedulers_one_overdue_case_one_notice_one_digest_line(db_url, tmp_path):
    from services.mediation.schemas import CaseCreate
    from services.notify.bootstrap import bootstrap
    from services.notify.settings import NotifySettings

    settings = MediationSettings(database_url=db_url, data_dir=tmp_path / "var", deadline_opened_h=0.0002,
                                 deadline_escalated_h=0)
    engines = [make_engine(db_url), make_engine(db_url)]
    try:
        migrate.upgrade(engines[0])
        meds = [Mediation(e, settings) for e in engines]
        uid, _ = meds[0].add_user(role=Role.MEDIATOR, name="王调解", office="xiacheng", email="wang@example.org")
        meds[0].add_user(role=Role.INSURER, name="PICC", insurer_code="PICC")
        from services.mediation.domain.model import Actor

        mediator = Actor(Role.MEDIATOR, uid, "王调解", None, "xiacheng")
        row, _ = meds[0].open_case(actor=mediator, cmd=CaseCreate.model_validate(CASE))
        other, _ = meds[0].open_case(actor=mediator, cmd=CaseCreate.model_validate(CASE))
        meds[0].transition(actor=mediator, case_id=other.id, to=Status.ESCALATED, reason="no deadline here")
        time.sleep(1.0)  # 0.72 s deadline passed

        stop = threading.Event()
        counts: list[int] = []

        def process(k: int) -> None:  # one "mediation process": its own engine, loop and scheduler
            async def go() -> None:
                poke, halt = asyncio.Event(), asyncio.Event()
                task = asyncio.create_task(run_scheduler(Office(meds[k]), poke, halt, interval_s=0.05,
                                                         holder=f"process-{k}"))
                while not stop.is_set():
                    await asyncio.sleep(0.02)
                halt.set()
                await task
            asyncio.run(go())
            counts.append(k)

        threads = [threading.Thread(target=process, args=(k,)) for k in (0, 1)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join(10)
        assert counts and len(counts) == 2
        events = _overdue_events(engines[0])
        assert [e.key for e in events] == [row.id], events  # exactly one, for the overdue case only
        # racing past the lease (both raise at once): the notice's unique key still makes it one
        results: list[int] = []
        ts = [threading.Thread(target=lambda k=k: results.append(Office(meds[k]).raise_overdue())) for k in (0, 1)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(10)
        assert sum(results) == 0 and len(_overdue_events(engines[0])) == 1
        # the lease: one holder at a time, taken over once it expired
        o0, o1 = Office(meds[0]), Office(meds[1])
        assert o0.take_lease("t", "a", 30) and not o1.take_lease("t", "b", 30) and o0.take_lease("t", "a", 30)
        assert o1.take_lease("t2", "b", -1) and o0.take_lease("t2", "a", 30)

        # notify, two workers: each records every case event, then each records today's digests
        ns = NotifySettings(database_url=db_url, data_dir=tmp_path / "var")
        apps = [bootstrap(engine=e, settings=ns) for e in engines]
        from sqlmodel import Session, select

        with Session(engines[0]) as s:
            envs = [Envelope.from_bytes(r.payload) for r in s.exec(select(OutboxRow).order_by(OutboxRow.seq)).all()]
        for app in apps:
            for env in envs:
                app.recorder.record_envelope(env)
        day = datetime.now(UTC).date()
        ids = [i for app in apps for i in app.recorder.record_digests(day=day)]
        assert len(ids) == 1, ids
        digest = apps[0].store.get(ids[0])
        assert digest.recipient == "wang@example.org"
        lines = [ln for ln in digest.body.splitlines() if ln[:1].isdigit() and ". " in ln]
        assert len(lines) == 1 and row.case_number in lines[0], digest.body  # one digest line, for that case
        assert other.case_number not in digest.body
    finally:
        for e in engines:
            e.dispose()


def test_running_system_tells_the_mediator_once_and_the_digest_lists_it(db_url, tmp_path):
    """The embedded system end to end: a case past its (configured) deadline gives the mediator one
    overdue email, however many checks pass; `python -m services.notify digest` then records one."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from services.embedded import running_system, wait_for

    env = {"XJ_DEADLINE_OPENED_H": "0.0003", "XJ_OVERDUE_CHECK_S": "0.2"}
    with running_system(tmp_path / "var", db_url, env=env) as s:
        s.tokens = {"mediator": s.add_user("mediator", "王调解", office="xiacheng", email="wang@example.org"),
                    "insurer": s.add_user("insurer", "PICC", insurer="PICC")}
        with s.client("mediator") as m:
            created = m.post("/api/v1/cases", json=CASE).json()
            cid = created["case_id"]

            def overdue_mails():
                notes = m.get(f"/api/v1/cases/{cid}/notifications").json()
                return [n for n in notes if n.get("template") == "mediator_case_overdue"] or None

            first = wait_for(overdue_mails, timeout=20)
            time.sleep(1.5)  # several more checks
            assert len(overdue_mails()) == len(first) == 1
            assert m.get(f"/api/v1/cases/{cid}").json()["overdue"] is True
        root = Path(__file__).resolve().parents[3]
        out = subprocess.run([sys.executable, "-m", "services.notify", "digest"], cwd=root, capture_output=True,
                             text=True, timeout=120, env={**os.environ, "XJ_DATABASE_URL": db_url,
                                                          "XJ_DATA_DIR": str(s.data_dir)})
        assert "1 recorded" in out.stdout, out.stdout + out.stderr
