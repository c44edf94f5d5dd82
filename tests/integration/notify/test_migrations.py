"""Notify's Alembic history: its own version table, up and down, and in step with the tables."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.notify.adapters import migrate
from services.notify.adapters.tables import NotifyNotification
from shared.db import make_engine

pytestmark = pytest.mark.integration

NOTIFY_TABLES = {"notify_notification", "notify_consumed_event", "notify_insurer_channel", "notify_case"}


def _include(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    return type_ != "table" or bool(name and name.startswith("notify_"))


def diff(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_object": _include,
                                                     "version_table": "alembic_version_notify"})
        return list(compare_metadata(ctx, NotifyNotification.metadata))


def test_up_down_up_in_its_own_version_table(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        migrate.upgrade(engine)  # idempotent at start-up
        names = set(sa.inspect(engine).get_table_names())
        assert names >= NOTIFY_TABLES and "alembic_version_notify" in names
        assert "alembic_version" not in names  # the default table is left to whoever owns it
        with engine.connect() as c:
            assert c.execute(sa.text("select version_num from alembic_version_notify")).scalar() == "notify_0001"
        migrate.downgrade(engine, "base")
        assert not NOTIFY_TABLES & set(sa.inspect(engine).get_table_names())
        migrate.upgrade(engine)
    finally:
        engine.dispose()


def test_migrations_match_the_tables(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        migrate.upgrade(engine)
        assert diff(engine) == []
    finally:
        engine.dispose()


def test_at_head_the_alembic_context_is_not_entered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Alembic's migration context is process-wide: another service migrating in another thread
    # must not be disturbed by notify's start-up when there is nothing to do
    engine = make_engine(f"sqlite:///{tmp_path / 'h.db'}")
    migrate.upgrade(engine)

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("alembic entered")

    monkeypatch.setattr(migrate.command, "upgrade", boom)
    migrate.upgrade(engine)
    assert migrate.current(engine) == {"notify_0001"}
    engine.dispose()
