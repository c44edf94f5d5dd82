"""Migration 0003_office up, down and up again, on SQLite and PostgreSQL, with a case in the table."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

from services.mediation.adapters.migrate import alembic_config, upgrade
from shared.db import make_engine

pytestmark = pytest.mark.integration
NEW = {"mediation_blob", "mediation_attachment", "mediation_lease", "mediation_overdue_notice"}


def test_0003_office_round_trip(db_url):
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        assert set(sa.inspect(engine).get_table_names()) >= NEW
        assert "evidence_stale" in {c["name"] for c in sa.inspect(engine).get_columns("mediation_case")}
        cfg = alembic_config(engine)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0001")
        names = set(sa.inspect(engine).get_table_names())
        assert not NEW & names and "mediation_case" in names
        assert "evidence_stale" not in {c["name"] for c in sa.inspect(engine).get_columns("mediation_case")}
        upgrade(engine)
        assert set(sa.inspect(engine).get_table_names()) >= NEW
    finally:
        engine.dispose()
