"""GPS fixes as columns, a row per rider, hour and batch (``trajectory_gps_chunk``) instead of a row
per fix: an index entry per fix was what PostgreSQL spent most of its time on when a worker stored
a replayed day (binary COPY into the primary-keyed ping table: 400-580k rows/s here; the same
rows without an index 1.7-1.8M), and a rider-day now loads in a few rows. Stored fixes are moved
over, packed as the store packs a batch.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAGE = 200_000


def upgrade() -> None:
    from services.trajectory.adapters.feeds import GpsColumns
    from services.trajectory.adapters.store import insert_chunks, pack

    rider = sa.String().with_variant(sa.String(collation="C"), "postgresql")
    op.create_table(
        "trajectory_gps_chunk",
        sa.Column("rider_id", rider, nullable=False),
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("digest", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("t0", sa.Float(), nullable=False),
        sa.Column("t1", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("rider_id", "hour", "digest"),
    )
    op.create_index("ix_trajectory_gps_chunk_received_at", "trajectory_gps_chunk", ["received_at"],
                    postgresql_using="brin")
    conn = op.get_bind()
    result = conn.execute(sa.text(
        "SELECT rider_id, t, lat, lon, accuracy, received_at FROM trajectory_gps_ping "
        "ORDER BY received_at, rider_id, t").execution_options(yield_per=PAGE))
    for page in result.partitions():
        by_time: dict[float, list] = {}
        for r in page:
            by_time.setdefault(float(r[5]), []).append(r)
        for received_at, rows in by_time.items():
            gps = GpsColumns(pl.Series([r[0] for r in rows], dtype=pl.String),
                             *(np.array([np.nan if r[k] is None else r[k] for r in rows], dtype=np.float64)
                               for k in (1, 2, 3, 4)), np.arange(len(rows)))
            insert_chunks(conn, pack(gps, received_at))
    op.drop_table("trajectory_gps_ping")


def downgrade() -> None:
    from services.trajectory.adapters.store import FIX, ping_keys

    op.create_table(
        "trajectory_gps_ping",
        sa.Column("rider_id", sa.String().with_variant(sa.String(collation="C"), "postgresql"), nullable=False),
        sa.Column("t", sa.Float(), nullable=False),
        sa.Column("k", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("accuracy", sa.Float(), nullable=True),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("rider_id", "t", "k"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_trajectory_gps_ping_received_at", "trajectory_gps_ping", ["received_at"],
                    postgresql_using="brin")
    conn = op.get_bind()
    for rider_id, data, received_at in conn.execute(sa.text(
            "SELECT rider_id, data, received_at FROM trajectory_gps_chunk")).all():
        f = np.frombuffer(data, dtype=FIX)
        keys = ping_keys(f["lat"], f["lon"], f["accuracy"])
        conn.execute(sa.text("INSERT INTO trajectory_gps_ping (rider_id, t, k, lat, lon, accuracy, received_at) "
                             "VALUES (:r, :t, :k, :lat, :lon, :acc, :at) ON CONFLICT DO NOTHING"),
                     [{"r": rider_id, "t": float(x["t"]), "k": int(k), "lat": float(x["lat"]), "lon": float(x["lon"]),
                       "acc": None if np.isnan(x["accuracy"]) else float(x["accuracy"]), "at": received_at}
                      for x, k in zip(f, keys.tolist(), strict=True)])
    op.drop_index("ix_trajectory_gps_chunk_received_at", table_name="trajectory_gps_chunk")
    op.drop_table("trajectory_gps_chunk")
