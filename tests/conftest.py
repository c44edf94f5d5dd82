"""Shared fixtures: databases. Every test that touches a database runs on SQLite and on a real
PostgreSQL server (``XJ_TEST_DATABASE_URL``, which .ci/run sets after starting one with
deploy/postgres/pg.sh). Without it the PostgreSQL variants skip with a visible reason, except under
CI=true, where they fail."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

PG_URL = os.environ.get("XJ_TEST_DATABASE_URL")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need_postgres() -> str:
    if PG_URL:
        return PG_URL
    if IN_CI:
        pytest.fail("CI=true but XJ_TEST_DATABASE_URL is not set: PostgreSQL tests must run in CI")
    pytest.skip("no PostgreSQL server: set XJ_TEST_DATABASE_URL (bash deploy/postgres/pg.sh up; "
                "export XJ_TEST_DATABASE_URL=$(bash deploy/postgres/pg.sh url))")


@pytest.fixture
def fresh_database(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """``fresh_database("sqlite" | "postgresql") -> url`` of an empty database, dropped afterwards."""
    made: list[tuple[sa.Engine, str]] = []

    def make(kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path / f'xj-{uuid.uuid4().hex[:8]}.db'}"
        base = sa.make_url(need_postgres())
        name = f"xj_{uuid.uuid4().hex[:12]}"
        admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        made.append((admin, name))
        return base.set(database=name).render_as_string(hide_password=False)

    yield make
    for admin, name in made:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, fresh_database: Callable[[str], str]) -> str:
    return fresh_database(request.param)


# Tests post webhooks to receivers on 127.0.0.1: the SSRF guard (services/notify/channels/ssrf.py)
# is lifted for them, in this process and the processes it starts; the SSRF tests turn it on.
os.environ.setdefault("XJ_WEBHOOK_ALLOW_PRIVATE", "1")
