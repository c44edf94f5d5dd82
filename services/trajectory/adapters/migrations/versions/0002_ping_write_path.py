"""Pings on PostgreSQL: rider ids compared bytewise (``COLLATE "C"``) and ``received_at`` under a
BRIN index, which together made a binary COPY into the table 1.35 times as fast here (342k ->
462k rows/s in batches of 20,000). Rows arrive in ``received_at`` order, so a block-range index
costs almost nothing to keep and still serves the retention's range delete. SQLite keeps what it has (it compares bytewise already).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_trajectory_gps_ping_received_at"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(INDEX, table_name="trajectory_gps_ping")
    op.create_index(INDEX, "trajectory_gps_ping", ["received_at"], postgresql_using="brin")
    op.execute('ALTER TABLE trajectory_gps_ping ALTER COLUMN rider_id TYPE varchar COLLATE "C"')


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute('ALTER TABLE trajectory_gps_ping ALTER COLUMN rider_id TYPE varchar COLLATE "default"')
    op.drop_index(INDEX, table_name="trajectory_gps_ping")
    op.create_index(INDEX, "trajectory_gps_ping", ["received_at"])
