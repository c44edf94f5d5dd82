"""Gaps the streaming tracker saw close, and when each was flagged.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trajectory_gap",
        sa.Column("rider_id", sa.String(), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("cause", sa.String(), nullable=False),
        sa.Column("previous_order", sa.String(), nullable=True),
        sa.Column("next_order", sa.String(), nullable=True),
        sa.Column("recorded_at", sa.Float(), nullable=False),
        sa.Column("claimed_at", sa.Float(), nullable=True),
        sa.Column("flagged_at", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("rider_id", "start"),
    )
    op.create_index("ix_trajectory_gap_unflagged", "trajectory_gap", ["flagged_at", "recorded_at"])


def downgrade() -> None:
    op.drop_index("ix_trajectory_gap_unflagged", table_name="trajectory_gap")
    op.drop_table("trajectory_gap")
