"""Fixtures of the fault suite: servers of its own (see servers.py); the ``reliability`` fixture
and the options come from the plugin ``tests.faults.plugin``."""

from tests.faults.servers import private_kafka, private_postgres  # noqa: F401
