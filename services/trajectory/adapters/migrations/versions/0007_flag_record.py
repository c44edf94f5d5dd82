"""What a gap's flag said and saw, kept with the gap: the phase and why, the gap's end as judged,
and how many GPS fixes and platform events of the rider the judgement was made on. A flag recorded
when the order closed, before any claim, is evidence in itself.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("phase", sa.String()), ("why", sa.String()), ("flag_end", sa.Float()), ("pings_seen", sa.Integer()),
           ("events_seen", sa.Integer()))


def upgrade() -> None:
    with op.batch_alter_table("trajectory_gap") as t:
        for name, kind in COLUMNS:
            t.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("trajectory_gap") as t:
        for name, _ in COLUMNS:
            t.drop_column(name)
