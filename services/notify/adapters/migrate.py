"""Run notify's migrations: ``upgrade(engine)`` at start-up (idempotent)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_notify"  # as in migrations/env.py


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def current(engine: Engine) -> set[str]:
    """The revisions the database is at (empty: none of notify's tables yet)."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return set(ctx.get_current_heads())


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring notify's tables to ``revision``. Nothing is done (and Alembic's process-wide
    migration context is not entered) when they are there already: another service may be
    migrating in another thread of this process, and Alembic's context is not thread-safe."""
    cfg = alembic_config(engine)
    if revision == "head" and current(engine) == set(ScriptDirectory.from_config(cfg).get_heads()):
        return
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
    logger.info("notify schema at %s", revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
