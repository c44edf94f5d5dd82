"""Fixtures of the bus contract suite: one real Kafka broker for the session (started with
``deploy/kafka/kafka.sh up``, stopped at the end only if this session started it), a bus
factory parametrized over the adapters, and a consumption-path factory parametrized over every
path a message takes (the bus's two adapters and the trajectory worker's own two consumers)."""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from shared.bus import Bus, InMemoryBus

if TYPE_CHECKING:
    from tests.contract.paths import ConsumerPath

ROOT = Path(__file__).resolve().parents[2]
KAFKA_SH = ROOT / "deploy" / "kafka" / "kafka.sh"
TOOLS_MISSING = 69  # kafka.sh's exit code when java or mvn is missing


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def _kafka_sh(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(KAFKA_SH), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A broker on 127.0.0.1 for the whole session. Without java or mvn the Kafka tests skip,
    with the reason shown; under CI=true they fail instead, since CI must run them."""
    up = _kafka_sh("up", timeout=900)  # a fresh machine fetches the jars first
    output = (up.stdout + up.stderr).strip()
    one_line = " ".join(output.split("\n"))
    if up.returncode == TOOLS_MISSING:
        reason = f"no real Kafka here: {one_line}"
        if _under_ci():
            pytest.fail(f"{reason} (CI=true: Kafka tests must run)", pytrace=False)
        pytest.skip(reason)
    if up.returncode != 0:
        pytest.fail(f"deploy/kafka/kafka.sh up failed ({up.returncode}):\n{output}", pytrace=False)
    # `up` runs under a lock, so exactly one caller sees "starting": only that one stops it.
    started_here = "starting the broker" in up.stdout
    yield f"127.0.0.1:{os.environ.get('XJ_KAFKA_PORT', '9092')}"
    if started_here:
        _kafka_sh("down", timeout=120)


BusFactory = Callable[[], Bus]


@pytest.fixture(params=[pytest.param("memory", marks=pytest.mark.unit),
                        pytest.param("kafka", marks=pytest.mark.integration)])
def make_bus(request: pytest.FixtureRequest) -> BusFactory:
    """Makes a bus of one adapter; call it inside the test's event loop (aiokafka binds its
    clients to the loop that creates them)."""
    if request.param == "memory":
        return InMemoryBus
    from shared.bus_kafka import KafkaBus

    bootstrap = request.getfixturevalue("kafka_bootstrap")
    return lambda: KafkaBus(bootstrap, partitions=6, client_id="xj-contract")


class Names:
    """Topic and group names no other test (or earlier run on the same broker) uses."""

    def __init__(self, test_name: str) -> None:
        self.prefix = f"ct.{re.sub(r'[^A-Za-z0-9]+', '-', test_name)[:40]}.{uuid.uuid4().hex[:8]}"

    def topic(self, name: str = "t") -> str:
        return f"{self.prefix}.{name}"

    def group(self, name: str = "g") -> str:
        return f"{self.prefix}.{name}"


@pytest.fixture
def names(request: pytest.FixtureRequest) -> Names:
    return Names(request.node.name)


PathFactory = Callable[[], "ConsumerPath"]


@pytest.fixture(params=[pytest.param("memory", marks=pytest.mark.unit),
                        pytest.param("kafka-bus", marks=pytest.mark.integration),
                        pytest.param("faust-agent", marks=pytest.mark.integration),
                        pytest.param("ping-consumer", marks=pytest.mark.integration)])
def consumer_path(request: pytest.FixtureRequest, names: Names, tmp_path: Path) -> PathFactory:
    """Makes the adapter of one consumption path (``tests/contract/paths.py``); call it inside the
    test's event loop."""
    from tests.contract import paths

    if request.param == "memory":
        return lambda: paths.memory_path(names.topic(), names.group())
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    if request.param == "kafka-bus":
        return lambda: paths.kafka_bus_path(bootstrap, names.topic(), names.group())
    if request.param == "faust-agent":
        return lambda: paths.faust_agent_path(bootstrap, tmp_path)
    return lambda: paths.ping_consumer_path(bootstrap, tmp_path)
