"""Mediation's Alembic history on SQLite and PostgreSQL: in step with the tables, and revision
0002_evidence_review keeps stored cases working (findings read from the stored packets, an
insufficient_data packet recorded as undetermined, a case already past proposal_sent recorded as
having sent its packet), down and up again."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import services.mediation.adapters.tables  # noqa: F401 - registers the tables
from services.mediation.adapters import migrate
from shared.db import make_engine

pytestmark = pytest.mark.integration

T0 = datetime(2025, 5, 20, 2, 0, tzinfo=UTC)


def _include(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    return type_ != "table" or bool(name and name.startswith("mediation_"))


def _to(engine: sa.Engine, revision: str, down: bool = False) -> None:
    cfg = migrate.alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)


def test_migrations_match_the_tables(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"include_object": _include,
                                                         "version_table": "alembic_version_mediation"})
            assert list(compare_metadata(ctx, SQLModel.metadata)) == []
            head = ScriptDirectory.from_config(migrate.alembic_config(engine)).get_current_head()
            assert conn.execute(sa.text("select version_num from alembic_version_mediation")).scalar() == head
    finally:
        engine.dispose()


def _case(cid: str, packet_id: str, status: str) -> dict[str, object]:
    return {"id": cid, "case_number": f"XJ-{cid}", "status": status, "rider_id": "R1", "rider_name": "李明",
            "rider_phone": "13800138000", "rider_lang": "zh", "insurer_code": "PICC", "policy_number": "P",
            "claim_number": "C", "product": "continuous-delivery", "incident_at": T0, "injury": "",
            "consent_given": True, "consent_method": "written", "consent_scope": "", "office": "o",
            "mediator_id": "m", "access_code_hash": "0" * 64, "created_at": T0, "status_since": T0,
            "packet_id": packet_id, "assessment_phase": "insufficient_data" if cid == "c-old" else "connecting",
            "audit_seq": 0, "audit_head": "0" * 64, "version": 1}


def _packet(pid: str, cid: str, phase: str, continuous: bool, covered: bool) -> dict[str, object]:
    body = {"packet_id": pid, "assessment": {"phase": phase, "continuous_delivery": continuous},
            "coverage": {"covered": covered, "phase": phase}}
    return {"id": pid, "case_id": cid, "created_at": T0, "sha256": "a" * 64, "body": orjson.dumps(body)}


def test_0002_reads_stored_packets_and_marks_what_was_sent(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        _to(engine, "0001")
        meta = sa.MetaData()
        meta.reflect(engine, only=["mediation_case", "mediation_packet", "mediation_transition"])
        case_t, packet_t, tr_t = (meta.tables[n] for n in ("mediation_case", "mediation_packet", "mediation_transition"))
        with engine.begin() as c:
            # before 0002 the engine wrote false for insufficient_data, and coverage false
            c.execute(case_t.insert(), [_case("c-old", "p-old", "insurer_rejected"), _case("c-new", "p-new", "evidence_ready")])
            c.execute(packet_t.insert(), [_packet("p-old", "c-old", "insufficient_data", False, False),
                                          _packet("p-new", "c-new", "connecting", True, True)])
            c.execute(tr_t.insert(), [
                {"case_id": "c-old", "at": T0, "actor": "m", "from_status": "under_review", "to_status": "proposal_sent",
                 "reason": ""},
                {"case_id": "c-old", "at": T0.replace(hour=3), "actor": "m", "from_status": "proposal_sent",
                 "to_status": "insurer_rejected", "reason": "x"},
                {"case_id": "c-new", "at": T0, "actor": "system:system", "from_status": "evidence_requested",
                 "to_status": "evidence_ready", "reason": "assessment: connecting"}])
        _to(engine, "head")
        with engine.connect() as c:
            packets = {r.id: r for r in c.execute(sa.text(
                "select id, phase, continuous_delivery, covered, sent_at from mediation_packet")).all()}
            cases = {r.id: r for r in c.execute(sa.text(
                "select id, sent_packet_id, sent_phase from mediation_case")).all()}
        old, new = packets["p-old"], packets["p-new"]
        assert old.phase == "insufficient_data" and old.continuous_delivery is None and old.covered is None
        assert old.sent_at is not None
        assert new.phase == "connecting" and bool(new.continuous_delivery) is True and bool(new.covered) is True
        assert new.sent_at is None
        assert cases["c-old"].sent_packet_id == "p-old" and cases["c-old"].sent_phase == "insufficient_data"
        assert cases["c-new"].sent_packet_id is None  # never sent: its insurer sees no evidence
        _to(engine, "0001", down=True)
        assert "sent_packet_id" not in {col["name"] for col in sa.inspect(engine).get_columns("mediation_case")}
        _to(engine, "head")
        assert "sent_packet_id" in {col["name"] for col in sa.inspect(engine).get_columns("mediation_case")}
    finally:
        engine.dispose()
