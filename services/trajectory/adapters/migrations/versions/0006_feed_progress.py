"""How far the Kafka consumers' stored feeds reach: per topic partition, the offset after the last
record whose batch was stored (or refused), written in the same transaction as the batch. An
assessment request waits until every feed partition is stored up to the end it had when the
request was taken, so it sees every ping and event the broker accepted before it, whichever worker
read them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "trajectory_feed_progress",
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("topic", sa.String(), nullable=False),
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "topic", "partition"),
    )


def downgrade() -> None:
    op.drop_table("trajectory_feed_progress")
