"""Database engines and units of work, for every service. SQLite file under ``XJ_DATA_DIR`` by
default; PostgreSQL when ``XJ_DATABASE_URL`` names one. Each service owns its tables (prefixed with
its name) and its Alembic history; they may share one database.

A unit of work is a fresh session per request or message (``with unit_of_work(engine) as s``),
committed at the end, rolled back on error; never a module-level session.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from shared.config import Settings


def database_url(url: str | None, data_dir: Path) -> str:
    if url:
        return url
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(data_dir / 'xianjie.db').resolve()}"


def engine_for(settings: Settings) -> Engine:
    """The engine ``XJ_DATABASE_URL`` names, or SQLite under ``XJ_DATA_DIR``."""
    return make_engine(database_url(settings.database_url, settings.data_dir))


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    # PostgreSQL: fail fast when the server is away (callers answer 503), check connections on use
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, pool_timeout=5,
                         connect_args={"connect_timeout": 3})


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
