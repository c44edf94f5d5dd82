"""Shared inputs of the packet tests: the seed case (assessed by the trajectory engine, with a
made-up case around it) and signing keys made from fixed seeds, so packets are reproducible."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.mediation.packet import KeyRing, build_packet
from services.mediation.packet.sign import PRIVATE_FILE
from tests.support.sample_packet import seed_inputs


def fixed_keyring(directory: Path, seed: int) -> KeyRing:
    """A KeyRing whose key is derived from ``seed`` (tests only: real keys are random)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
    path = directory / PRIVATE_FILE
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return KeyRing(directory)


@pytest.fixture(scope="session")
def seed_kwargs() -> dict[str, Any]:
    return seed_inputs()


@pytest.fixture(scope="session")
def _seed_body(seed_kwargs: dict[str, Any]) -> dict[str, Any]:
    return build_packet(**seed_kwargs)


@pytest.fixture
def seed_body(_seed_body: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(_seed_body)


@pytest.fixture
def keyring(tmp_path: Path) -> KeyRing:
    return fixed_keyring(tmp_path / "keys", 1)


@pytest.fixture
def other_keyring(tmp_path: Path) -> KeyRing:
    return fixed_keyring(tmp_path / "other-keys", 2)


@pytest.fixture
def signed(seed_body: dict[str, Any], keyring: KeyRing) -> dict[str, Any]:
    return keyring.sign(seed_body)
