"""Alembic environment of the trajectory service: only its ``trajectory_*`` tables, and its own
version table, so that it can share a database with the other services.

Run at start-up by ``services.trajectory.adapters.store.migrate(engine)`` (which passes its
connection in ``config.attributes``), or by hand:
``alembic -c services/trajectory/adapters/migrations/alembic.ini upgrade head``
(database from ``XJ_DATABASE_URL``, else the SQLite file under ``XJ_DATA_DIR``).
"""

from __future__ import annotations

import logging.config
from typing import Any

from alembic import context
from sqlmodel import SQLModel

from services.trajectory.adapters.store import TABLE_PREFIX, VERSION_TABLE  # registers the tables
from shared.config import Settings
from shared.db import database_url, make_engine

config = context.config
if config.config_file_name is not None and config.get_section("loggers") is not None:
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    if type_ == "table":
        return name is not None and name.startswith(TABLE_PREFIX)
    return True


def _configure(**kw: Any) -> None:
    context.configure(target_metadata=SQLModel.metadata, version_table=VERSION_TABLE,
                      include_name=include_name, render_as_batch=True, compare_type=True, **kw)


def run_offline() -> None:
    settings = Settings()
    _configure(url=database_url(settings.database_url, settings.data_dir), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        _configure(connection=conn)
        with context.begin_transaction():
            context.run_migrations()
        return
    settings = Settings()
    engine = make_engine(database_url(settings.database_url, settings.data_dir))
    with engine.connect() as connection:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
