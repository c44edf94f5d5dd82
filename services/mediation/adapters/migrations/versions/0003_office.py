"""office: attachments, blobs, scheduler lease, overdue notices, stale evidence flag

Revision ID: 0003_office
Revises: 0003_gap_flags
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_office"
down_revision = "0003_gap_flags"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mediation_blob",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=True),
    )
    op.create_table(
        "mediation_attachment",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("added_by", sa.String(100), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_mediation_attachment_case_id", "mediation_attachment", ["case_id"])
    op.create_table(
        "mediation_lease",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(100), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "mediation_overdue_notice",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("case_id", "deadline"),
    )
    op.create_index("ix_mediation_overdue_notice_case_id", "mediation_overdue_notice", ["case_id"])
    # plain ALTER TABLE ... ADD COLUMN (no batch copy of mediation_case on SQLite, see downgrade)
    op.add_column("mediation_case", sa.Column("evidence_stale", sa.Boolean(), nullable=False,
                                              server_default=sa.false()))


def downgrade() -> None:
    # plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): a batch copy of mediation_case would drop
    # the table that mediation_transition's foreign key points at
    op.drop_column("mediation_case", "evidence_stale")
    op.drop_table("mediation_overdue_notice")
    op.drop_table("mediation_lease")
    op.drop_index("ix_mediation_attachment_case_id", "mediation_attachment")
    op.drop_table("mediation_attachment")
    op.drop_table("mediation_blob")
