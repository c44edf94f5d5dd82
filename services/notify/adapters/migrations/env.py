"""Alembic environment of the notify service: its own history, in its own version table, on
the connection handed over by ``services.notify.adapters.migrate.upgrade``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from services.notify.adapters.tables import NotifyNotification

VERSION_TABLE = "alembic_version_notify"
LOCK_ID = 0x6E6F7469  # "noti": serialises concurrent start-ups on PostgreSQL


def _include(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    return type_ != "table" or bool(name and name.startswith("notify_"))


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run notify migrations through services.notify.adapters.migrate.upgrade")
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": LOCK_ID})
    context.configure(connection=connection, target_metadata=NotifyNotification.metadata,
                      version_table=VERSION_TABLE, include_object=_include,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("notify migrations run online only")
run_migrations_online()
