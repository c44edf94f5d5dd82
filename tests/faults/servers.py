"""Servers of a fault scenario's own, so that killing them disturbs no other test: a Kafka broker
(``deploy/kafka/kafka.sh`` on free ports and its own data directory) and a PostgreSQL cluster
(``deploy/postgres/pg.sh`` likewise). Both keep their data across ``kill``/``stop`` and ``start``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from services.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} (CI=true: the fault scenarios must run)", pytrace=False)
    pytest.skip(what)


def _sigkill(pid: int, wait_s: float = 10.0) -> None:
    """SIGKILL ``pid`` and wait (up to ``wait_s``) until it is gone."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


class PrivateKafka:
    """``start()``, ``kill()`` (SIGKILL, no goodbye), ``stop()``; ``bootstrap`` stays the same."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="xj-fault-kafka-"))
        self.port, self.cport = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.env = {**os.environ, "XJ_KAFKA_PORT": str(self.port), "XJ_KAFKA_CONTROLLER_PORT": str(self.cport),
                    "XJ_KAFKA_VAR": str(self.dir)}

    def _sh(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(ROOT / "deploy/kafka/kafka.sh"), *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    def start(self) -> float:
        """Start (or restart) the broker; seconds until it answered."""
        t0 = time.monotonic()
        r = self._sh("up")
        if r.returncode == 69:
            _unavailable(f"no real Kafka here: {r.stderr.strip()}")
        assert r.returncode == 0, f"kafka.sh up failed: {r.stdout}{r.stderr}"
        return time.monotonic() - t0

    def pid(self) -> int | None:
        p = self.dir / "kafka.pid"
        try:
            return int(p.read_text().strip())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        pid = self.pid()
        assert pid is not None, "the broker is not running"
        _sigkill(pid)
        (self.dir / "kafka.pid").unlink(missing_ok=True)

    def stop(self) -> None:
        self._sh("down", timeout=120)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivatePostgres:
    """``start()``, ``stop()`` (fast shutdown), ``kill()`` (SIGKILL of the postmaster); ``url`` of
    its database ``xianjie_test`` stays the same."""

    def __init__(self) -> None:
        # not under pytest's tmp_path: as root the server runs as `postgres`, which must reach it
        self.dir = Path(tempfile.mkdtemp(prefix="xj-fault-pg-", dir="/tmp"))
        self.dir.chmod(0o755)
        self.port = free_port()
        self.env = {**os.environ, "XJ_PG_PORT": str(self.port), "XJ_PG_DIR": str(self.dir)}
        self.url = f"postgresql+psycopg://xianjie:xianjie@127.0.0.1:{self.port}/xianjie_test"

    def _sh(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", str(ROOT / "deploy/postgres/pg.sh"), *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    def start(self) -> None:
        r = self._sh("up")
        if r.returncode == 3:
            _unavailable(f"no PostgreSQL server binaries: {r.stderr.strip()}")
        assert r.returncode == 0, f"pg.sh up failed: {r.stdout}{r.stderr}"

    def stop(self) -> None:
        self._sh("down")

    def kill(self) -> None:
        _sigkill(int((self.dir / "data" / "postmaster.pid").read_text().split()[0]))

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_kafka():  # type: ignore[no-untyped-def]
    k = PrivateKafka()
    k.start()
    try:
        yield k
    finally:
        k.close()


@pytest.fixture
def private_postgres():  # type: ignore[no-untyped-def]
    p = PrivatePostgres()
    p.start()
    try:
        yield p
    finally:
        p.close()
