"""Backends for the trajectory store and service tests: every test taking ``engine`` runs on SQLite
and on PostgreSQL. PostgreSQL comes from ``XJ_TEST_DATABASE_URL`` (tests/conftest.py: skipped with
the reason shown, except under CI=true, where it fails); each test gets a schema of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from services.trajectory.adapters.store import FeedStore, migrate
from shared.db import make_engine
from tests.conftest import need_postgres


def pg_url() -> str:
    url = need_postgres()  # skips with the reason shown, or fails under CI=true
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[Engine]:
    if request.param == "sqlite":
        eng = make_engine(f"sqlite:///{tmp_path / 'xj.db'}")
        yield eng
        eng.dispose()
        return
    base = pg_url()
    schema = "xjtest_" + uuid.uuid4().hex[:12]
    admin = make_engine(base)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    eng = make_engine(make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
                      .render_as_string(hide_password=False))
    try:
        yield eng
    finally:
        eng.dispose()
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def store(engine: Engine) -> FeedStore:
    migrate(engine)
    return FeedStore(engine)
