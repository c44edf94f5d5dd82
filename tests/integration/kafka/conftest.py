"""The real broker of the bus contract suite, for the Kafka integration tests."""

from tests.contract.conftest import kafka_bootstrap  # noqa: F401  (the session broker fixture)
