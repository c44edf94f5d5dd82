"""Feed store: GPS pings, platform events, evidence holds, assessment replies.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # pings: the primary key (rider, phone time, key) is both the idempotency key and the index the
    # rider-day reads use; on SQLite the table is clustered on it (WITHOUT ROWID)
    op.create_table(
        "trajectory_gps_ping",
        sa.Column("rider_id", sa.String(), nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.Column("k", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("rider_id", "t", "k"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_trajectory_gps_ping_received_at", "trajectory_gps_ping", ["received_at"])

    op.create_table(
        "trajectory_platform_event",
        sa.Column("uid", sa.String(), nullable=False),
        sa.Column("rider_id", sa.String(), nullable=False),
        sa.Column("event_id", sa.String(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("order_id", sa.String(), nullable=True),
        sa.Column("merchant_lat", sa.Float(), nullable=True),
        sa.Column("merchant_lon", sa.Float(), nullable=True),
        sa.Column("customer_lat", sa.Float(), nullable=True),
        sa.Column("customer_lon", sa.Float(), nullable=True),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("uid"),
    )
    op.create_index("ix_trajectory_platform_event_rider_t", "trajectory_platform_event", ["rider_id", "t"])
    op.create_index("ix_trajectory_platform_event_received_at", "trajectory_platform_event", ["received_at"])

    op.create_table(
        "trajectory_evidence_hold",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("rider_id", sa.String(), nullable=False),
        sa.Column("t0", sa.Float(), nullable=False),
        sa.Column("t1", sa.Float(), nullable=False),
        sa.Column("ev_t0", sa.Float(), nullable=False),
        sa.Column("ev_t1", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "rider_id", "t0", "t1", name="uq_trajectory_evidence_hold"),
    )
    op.create_index("ix_trajectory_evidence_hold_case_id", "trajectory_evidence_hold", ["case_id"])
    op.create_index("ix_trajectory_evidence_hold_rider", "trajectory_evidence_hold", ["rider_id", "t0"])

    op.create_table(
        "trajectory_assessment_reply",
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("rider_id", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("envelope", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("request_id"),
    )
    op.create_index("ix_trajectory_assessment_reply_created_at", "trajectory_assessment_reply", ["created_at"])


def downgrade() -> None:
    op.drop_table("trajectory_assessment_reply")
    op.drop_table("trajectory_evidence_hold")
    op.drop_table("trajectory_platform_event")
    op.drop_table("trajectory_gps_ping")
