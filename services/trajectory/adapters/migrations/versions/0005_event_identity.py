"""An event is its (platform, rider_id, event_id): every platform numbers its events in its own space
(DATA_CONTRACT §1), so two platforms or two riders can send the same ``event_id`` for different
events. Keys of stored events with an id, ``id:<event_id>`` until now, become
``id:["<platform>","<rider_id>","<event_id>"]`` (the form ``store.id_uid`` writes). Events stored
before could not hold two events of one id, so no two old keys meet in the new form; keys of events
without an id (``sha256:...``) are unchanged.

Downgrade writes the old keys back; where two platforms or riders now share an id, only the
earliest received of them is kept (the old schema cannot hold both).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAGE = 20_000


def _new_uid(platform: str, rider_id: str, event_id: str) -> str:
    return "id:" + orjson.dumps([platform, rider_id, event_id]).decode()  # as store.id_uid, frozen here


def _rekey(conn: sa.Connection, pairs: list[tuple[str, str]]) -> None:
    for k in range(0, len(pairs), PAGE):
        conn.execute(sa.text("UPDATE trajectory_platform_event SET uid = :new WHERE uid = :old"),
                     [{"old": old, "new": new} for old, new in pairs[k:k + PAGE]])


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT uid, platform, rider_id, event_id FROM trajectory_platform_event "
        "WHERE event_id IS NOT NULL AND uid = 'id:' || event_id")).all()
    _rekey(conn, [(r[0], _new_uid(r[1], r[2], r[3])) for r in rows])


def downgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT uid, event_id FROM trajectory_platform_event WHERE event_id IS NOT NULL AND uid LIKE 'id:%' "
        "AND uid <> 'id:' || event_id ORDER BY received_at, uid")).all()
    kept: set[str] = set()
    pairs, drop = [], []
    for uid, event_id in rows:
        old = "id:" + event_id
        if old in kept:
            drop.append(uid)
        else:
            kept.add(old)
            pairs.append((uid, old))
    for k in range(0, len(drop), PAGE):
        conn.execute(sa.text("DELETE FROM trajectory_platform_event WHERE uid = :u"), [{"u": u} for u in drop[k:k + PAGE]])
    _rekey(conn, pairs)
