"""The command line of the office: `audit verify` catches a history row or a case status edited
in the database; `users list | disable | rotate` take effect at once in a running system (through
its token cache). SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import Session, select

from services.embedded import running_system

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
CASE = {
    "rider": {"id": "R-1", "name": "李明", "phone": "13800138000"}, "insurer_code": "PICC",
    "policy_number": "P-1", "claim_number": "C-1", "incident": {"at": "2025-05-14T14:10:00+08:00"},
    "consent": {"given": True, "method": "written"},
}


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.mediation", *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


def test_audit_verify_catches_edited_history_and_status(db_url, tmp_path):
    from services.mediation.adapters import migrate
    from services.mediation.adapters.tables import CaseRow, TransitionRow
    from services.mediation.domain.model import Actor, Role, Status
    from services.mediation.schemas import CaseCreate
    from services.mediation.service_layer.cases import Mediation
    from services.mediation.service_layer.office import Office
    from services.mediation.settings import MediationSettings
    from shared.db import make_engine

    env = {"XJ_DATABASE_URL": db_url, "XJ_DATA_DIR": str(tmp_path / "var")}
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        med = Mediation(engine, MediationSettings(database_url=db_url, data_dir=tmp_path / "var"))
        uid, _ = med.add_user(role=Role.MEDIATOR, name="m", office="o")
        med.add_user(role=Role.INSURER, name="i", insurer_code="PICC")
        actor = Actor(Role.MEDIATOR, uid, "m", None, "o")
        ids = {}
        for kind in ("intact", "history edited", "status edited", "reason edited", "correction edited"):
            row, _ = med.open_case(actor=actor, cmd=CaseCreate.model_validate(CASE))
            med.transition(actor=actor, case_id=row.id, to=Status.ESCALATED, reason="to the district")
            Office(med).correct_case(actor=actor, case_id=row.id, changes={"claim_number": "C-2"}, reason="typo")
            med.transition(actor=actor, case_id=row.id, to=Status.UNDER_REVIEW, reason="back")
            ids[kind] = row.id
        assert cli("audit", "verify", env=env).returncode == 0
        with Session(engine) as s:
            t = s.exec(select(TransitionRow).where(TransitionRow.case_id == ids["history edited"],
                                                   TransitionRow.to_status == "escalated",
                                                   TransitionRow.from_status == "opened")).one()
            t.to_status = "withdrawn"
            s.add(t)
            c = s.get(CaseRow, ids["status edited"])
            c.status = "resolved"
            s.add(c)
            r = s.exec(select(TransitionRow).where(TransitionRow.case_id == ids["reason edited"],
                                                   TransitionRow.to_status == "escalated",
                                                   TransitionRow.from_status == "opened")).one()
            r.reason = "the insurer asked for it"
            s.add(r)
            k = s.exec(select(TransitionRow).where(TransitionRow.case_id == ids["correction edited"],
                                                   TransitionRow.reason.like("corrected (%"))).one()
            k.reason = k.reason.replace("C-2", "C-3")
            s.add(k)
            s.commit()
        out = cli("audit", "verify", env=env)
        assert out.returncode == 1, out.stdout + out.stderr
        named = {k for k, cid in ids.items() if f"{cid}: " in out.stdout}
        assert named == {"history edited", "status edited", "reason edited", "correction edited"}, out.stdout
        assert "1 intact, 4 altered" in out.stdout
    finally:
        engine.dispose()


def test_users_list_disable_rotate_take_effect_at_once(db_url, tmp_path):
    with running_system(tmp_path / "var", db_url) as s:
        env = {"XJ_DATABASE_URL": db_url, "XJ_DATA_DIR": str(s.data_dir)}
        add = cli("users", "add", "--role", "mediator", "--name", "张调解", "--email", "zhang@example.org", env=env)
        assert add.returncode == 0
        token = add.stdout.strip()
        s.tokens["m"] = token
        with s.client("m") as m:
            assert m.get("/api/v1/cases").status_code == 200  # the server now remembers the token
        listed = cli("users", "list", env=env)
        assert listed.returncode == 0 and "张调解\tmediator" in listed.stdout and "active" in listed.stdout
        rotated = cli("users", "rotate", "张调解", env=env)
        assert rotated.returncode == 0
        new = rotated.stdout.strip()
        assert new and new != token
        with s.client(None, headers={"Authorization": f"Bearer {token}"}) as old:
            assert old.get("/api/v1/cases").status_code == 401
        with s.client(None, headers={"Authorization": f"Bearer {new}"}) as fresh:
            assert fresh.get("/api/v1/cases").status_code == 200
        assert cli("users", "disable", "张调解", env=env).returncode == 0
        with s.client(None, headers={"Authorization": f"Bearer {new}"}) as fresh:
            assert fresh.get("/api/v1/cases").status_code == 401
        assert "disabled" in cli("users", "list", env=env).stdout
        missing = cli("users", "rotate", "nobody", env=env)
        assert missing.returncode == 1 and "no account" in missing.stderr


def test_retention_never_touches_a_case_not_closed(db_url, tmp_path):
    from services.mediation.adapters import migrate
    from services.mediation.adapters.office_tables import AttachmentRow, BlobRow
    from services.mediation.domain.model import Actor, Role, Status
    from services.mediation.schemas import CaseCreate
    from services.mediation.service_layer.cases import Mediation
    from services.mediation.service_layer.office import Office
    from services.mediation.settings import MediationSettings
    from shared.db import make_engine

    env = {"XJ_DATABASE_URL": db_url, "XJ_DATA_DIR": str(tmp_path / "var")}
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        med = Mediation(engine, MediationSettings(database_url=db_url, data_dir=tmp_path / "var"))
        uid, _ = med.add_user(role=Role.MEDIATOR, name="m", office="o")
        med.add_user(role=Role.INSURER, name="i", insurer_code="PICC")
        actor = Actor(Role.MEDIATOR, uid, "m", None, "o")
        office = Office(med)
        pdf, own = b"%PDF-1.4 shared report\n", b"%PDF-1.4 only the closed case's\n"
        ids = []
        for close in (True, False):
            row, _ = med.open_case(actor=actor, cmd=CaseCreate.model_validate(CASE))
            office.add_attachment(actor=actor, case_id=row.id, data=pdf, filename="r.pdf", kind="medical_report",
                                  description="")
            if close:
                office.add_attachment(actor=actor, case_id=row.id, data=own, filename="o.pdf", kind="other",
                                      description="")
                for to in (Status.WITHDRAWN, Status.CLOSED):
                    med.transition(actor=actor, case_id=row.id, to=to, reason="done")
            ids.append(row.id)
        # closed today: a retention of 30 days keeps it
        out = cli("attachments", "prune", "--closed-days", "30", env=env)
        assert out.returncode == 0 and out.stdout.startswith("0 attachments"), out.stdout + out.stderr
        out = cli("attachments", "prune", "--closed-days", "0", env=env)
        assert out.returncode == 0 and out.stdout.startswith("2 attachments") and "1 files" in out.stdout
        with Session(engine) as s:
            left = s.exec(select(AttachmentRow)).all()
            assert [a.case_id for a in left] == [ids[1]]  # the open case keeps its file
            assert {b.sha256 for b in s.exec(select(BlobRow)).all()} == {left[0].sha256}
        assert med.audit_trail(actor=actor, case_id=ids[0])["intact"]
    finally:
        engine.dispose()
