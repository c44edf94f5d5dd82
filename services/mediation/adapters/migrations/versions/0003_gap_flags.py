"""gap flags: the trajectory service's GapFlagged, projected for riders with an open case

Revision ID: 0003_gap_flags
Revises: 0002_evidence_review
Create Date: 2026-12-07 01:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_gap_flags"
down_revision = "0002_evidence_review"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mediation_gap_flag",
        sa.Column("rider_id", sa.String(length=100), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("phase", sa.String(length=32), nullable=False),
        sa.Column("continuous_delivery", sa.Boolean(), nullable=True),
        sa.Column("why", sa.String(length=64), nullable=False),
        sa.Column("previous_order", sa.String(length=100), nullable=True),
        sa.Column("next_order", sa.String(length=100), nullable=True),
        sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("rider_id", "start"),
    )


def downgrade() -> None:
    op.drop_table("mediation_gap_flag")
