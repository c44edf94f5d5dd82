"""Alembic environment of the mediation service (version table ``alembic_version_mediation``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool
from sqlmodel import SQLModel

import services.mediation.adapters.office_tables  # noqa: F401 - registers the tables
import services.mediation.adapters.tables  # noqa: F401 - registers the tables

config = context.config
VERSION_TABLE = "alembic_version_mediation"
target = SQLModel.metadata
MINE = {t for t in target.tables if t.startswith("mediation_")}


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    if type_ == "table":
        return name in MINE
    return True


def run() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        connectable = engine_from_config(config.get_section(config.config_ini_section) or {}, prefix="sqlalchemy.",
                                         poolclass=pool.NullPool)
        with connectable.connect() as conn:
            _run(conn)
    else:
        _run(connectable)


def _run(conn) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=conn, target_metadata=target, version_table=VERSION_TABLE,
                      include_object=include_object, render_as_batch=conn.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


run()
