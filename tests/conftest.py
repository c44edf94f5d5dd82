"""Shared fixtures: databases. Every test that touches a database runs on SQLite and on a real
PostgreSQL server (``XJ_TEST_DATABASE_URL``, which .ci/run sets after starting one with
deploy/postgres/pg.sh). Without it the PostgreSQL variants skip with a visible reason, except under
CI=true, where they fail."""

from __future__ import annotations

import atexit
import glob
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parents[1]
PG_SH = ROOT / "deploy" / "postgres" / "pg.sh"
_pg: dict[str, str | None] = {}


def _start_postgres() -> str | None:
    """A throwaway PostgreSQL server (deploy/postgres/pg.sh) when the machine has PostgreSQL's
    binaries and no server was named: ``make test`` runs what the machine can run. Stopped at
    exit if this started it. None, with the reason kept, when it cannot start."""
    if not glob.glob("/usr/lib/postgresql/*/bin/postgres"):
        _pg["why"] = ("PostgreSQL's server binaries are not installed (Debian: apt-get install -y postgresql), "
                      "and XJ_TEST_DATABASE_URL names no server")
        return None
    was_up = subprocess.run(["bash", str(PG_SH), "status"], capture_output=True).returncode == 0
    up = subprocess.run(["bash", str(PG_SH), "up"], capture_output=True, text=True, timeout=120)
    if up.returncode != 0:
        _pg["why"] = f"deploy/postgres/pg.sh up failed: {(up.stderr or up.stdout).strip()[-500:]}"
        return None
    if not was_up:
        atexit.register(lambda: subprocess.run(["bash", str(PG_SH), "down"], capture_output=True))
    return subprocess.run(["bash", str(PG_SH), "url"], capture_output=True, text=True, check=True).stdout.strip()


def need_postgres() -> str:
    if "url" not in _pg:
        _pg["url"] = os.environ.get("XJ_TEST_DATABASE_URL") or _start_postgres()
    url = _pg["url"]
    if url:
        return url
    if IN_CI:
        pytest.fail(f"CI=true but no PostgreSQL server: {_pg.get('why')}")
    pytest.skip(f"no PostgreSQL server: {_pg.get('why')}")


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
        for attempt in range(20):  # FORCE may not end an autovacuum worker (a superuser's backend): it soon ends itself
            try:
                with admin.connect() as c:
                    c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                break
            except sa.exc.DBAPIError:
                if attempt == 19:
                    raise
                time.sleep(0.5)
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, fresh_database: Callable[[str], str]) -> str:
    return fresh_database(request.param)


# Tests post webhooks to receivers on 127.0.0.1: the SSRF guard (services/notify/adapters/channels/ssrf.py)
# is lifted for them, in this process and the processes it starts; the SSRF tests turn it on.
os.environ.setdefault("XJ_WEBHOOK_ALLOW_PRIVATE", "1")
