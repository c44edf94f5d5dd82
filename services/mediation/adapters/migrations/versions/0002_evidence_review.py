"""evidence review: which packet went to the insurer, and what each packet found

Revision ID: 0002_evidence_review
Revises: 0001
Create Date: 2026-12-07 00:30:00

- ``mediation_case.sent_packet_id`` / ``sent_phase``: the packet sent with the proposal (the insurer
  sees that one only) and its phase;
- ``mediation_transition.packet_id``: the packet a transition built (evidence_ready) or sent
  (proposal_sent);
- ``mediation_packet.request_id``, ``phase``, ``continuous_delivery``, ``covered``, ``sent_at``.

Stored packets get their phase and findings from their own signed bytes. A case that already went
through ``proposal_sent`` is taken to have sent its current packet (before this revision the insurer
saw the current packet from evidence_ready on).
"""
import json

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0002_evidence_review"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mediation_case", schema=None) as b:
        b.add_column(sa.Column("sent_packet_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True))
        b.add_column(sa.Column("sent_phase", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
    with op.batch_alter_table("mediation_transition", schema=None) as b:
        b.add_column(sa.Column("packet_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True))
    with op.batch_alter_table("mediation_packet", schema=None) as b:
        b.add_column(sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True))
        b.add_column(sa.Column("phase", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        b.add_column(sa.Column("continuous_delivery", sa.Boolean(), nullable=True))
        b.add_column(sa.Column("covered", sa.Boolean(), nullable=True))
        b.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))

    conn = op.get_bind()
    packet = sa.table("mediation_packet", sa.column("id", sa.String), sa.column("body", sa.LargeBinary),
                      sa.column("phase", sa.String), sa.column("continuous_delivery", sa.Boolean),
                      sa.column("covered", sa.Boolean), sa.column("sent_at", sa.DateTime(timezone=True)))
    case = sa.table("mediation_case", sa.column("id", sa.String), sa.column("packet_id", sa.String),
                    sa.column("assessment_phase", sa.String), sa.column("sent_packet_id", sa.String),
                    sa.column("sent_phase", sa.String))
    transition = sa.table("mediation_transition", sa.column("case_id", sa.String), sa.column("to_status", sa.String),
                          sa.column("at", sa.DateTime(timezone=True)))
    for pid, body in conn.execute(sa.select(packet.c.id, packet.c.body)).all():
        try:
            doc = json.loads(bytes(body))
        except ValueError:
            continue
        a, cov = doc.get("assessment") or {}, doc.get("coverage") or {}
        phase = a.get("phase")
        open_ = phase == "insufficient_data"  # stored before 0002: false then meant "undetermined" here
        cd = None if open_ else a.get("continuous_delivery")
        covered = None if open_ else cov.get("covered")
        conn.execute(packet.update().where(packet.c.id == pid).values(
            phase=str(phase)[:32] if phase is not None else None,
            continuous_delivery=cd if isinstance(cd, bool) else None,
            covered=covered if isinstance(covered, bool) else None))
    sent = (sa.select(transition.c.case_id, sa.func.min(transition.c.at).label("first"))
            .where(transition.c.to_status == "proposal_sent").group_by(transition.c.case_id))
    for case_id, first in conn.execute(sent).all():
        row = conn.execute(sa.select(case.c.packet_id, case.c.assessment_phase).where(case.c.id == case_id)).first()
        if row is None or row.packet_id is None:
            continue
        conn.execute(case.update().where(case.c.id == case_id).values(sent_packet_id=row.packet_id,
                                                                       sent_phase=row.assessment_phase))
        conn.execute(packet.update().where(packet.c.id == row.packet_id).values(sent_at=first))


def downgrade() -> None:
    # plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35 has it): a batch copy of mediation_case
    # would drop the table that mediation_transition's foreign key points at
    for name in ("sent_at", "covered", "continuous_delivery", "phase", "request_id"):
        op.drop_column("mediation_packet", name)
    op.drop_column("mediation_transition", "packet_id")
    op.drop_column("mediation_case", "sent_phase")
    op.drop_column("mediation_case", "sent_packet_id")
