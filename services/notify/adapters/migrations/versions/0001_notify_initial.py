"""notify: notifications, consumed events, insurer channels, case view

Revision ID: notify_0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "notify_0001"
down_revision = None
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "notify_notification",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("event_id", sa.String(100), nullable=False),
        sa.Column("case_id", sa.String(100), nullable=False),
        sa.Column("case_number", sa.String(100), nullable=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("template", sa.String(60), nullable=False),
        sa.Column("lang", sa.String(5), nullable=False),
        sa.Column("subject", sa.String(500), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        _ts("next_attempt_at", nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("sent_at", nullable=True),
        sa.UniqueConstraint("event_id", "recipient", "channel", name="uq_notify_notification_key"),
    )
    op.create_index("ix_notify_notification_case_id", "notify_notification", ["case_id"])
    op.create_index("ix_notify_notification_due", "notify_notification", ["state", "next_attempt_at"])
    op.create_table(
        "notify_consumed_event",
        sa.Column("event_id", sa.String(100), primary_key=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("case_id", sa.String(100), nullable=False),
        _ts("consumed_at"),
    )
    op.create_table(
        "notify_insurer_channel",
        sa.Column("code", sa.String(50), primary_key=True),
        sa.Column("webhook_url", sa.String(2000), nullable=True),
        sa.Column("secrets", sa.JSON(), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("lang", sa.String(5), nullable=False, server_default="zh"),
        _ts("updated_at"),
    )
    op.create_table(
        "notify_case",
        sa.Column("case_id", sa.String(100), primary_key=True),
        sa.Column("case_number", sa.String(100), nullable=False),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("insurer_code", sa.String(50), nullable=False),
        sa.Column("mediator_email", sa.String(320), nullable=True),
        _ts("overdue_deadline", nullable=True),
        _ts("updated_at"),
    )
    op.create_index("ix_notify_case_overdue_deadline", "notify_case", ["overdue_deadline"])


def downgrade() -> None:
    op.drop_index("ix_notify_case_overdue_deadline", table_name="notify_case")
    op.drop_table("notify_case")
    op.drop_table("notify_insurer_channel")
    op.drop_table("notify_consumed_event")
    op.drop_index("ix_notify_notification_due", table_name="notify_notification")
    op.drop_index("ix_notify_notification_case_id", table_name="notify_notification")
    op.drop_table("notify_notification")
