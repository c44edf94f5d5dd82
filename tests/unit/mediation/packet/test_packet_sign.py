"""Signing and verifying: any change to a packet file is caught, and only trusted keys count."""

from __future__ import annotations

import base64
import copy
import hashlib
import random
import re
import stat
import threading

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from services.mediation.packet import (
    KeyRing,
    dump_packet,
    published_keys,
    verify,
    verify_bytes,
    verify_file,
)
from services.mediation.packet.canonical import manifest_for, unsigned
from services.mediation.packet.sign import JWK_FILE, PRIVATE_FILE, PUBLIC_FILE, public_key_from_text

from .conftest import fixed_keyring

pytestmark = pytest.mark.unit


def trusted(kr: KeyRing) -> list[str]:
    return [kr.public_key_b64]


def test_a_signed_packet_verifies(signed, keyring, tmp_path):
    v = verify(signed, trusted(keyring))
    assert v.ok and v.problems == [] and v.key_id == keyring.key_id
    assert v.case_number == "XJ-2025-000123" and v.packet_id == signed["packet_id"]
    assert "VALID" in v.report() and keyring.key_id in v.report()
    f = tmp_path / "packet.json"
    f.write_bytes(dump_packet(signed))
    assert verify_file(f, keyring.directory).ok
    f.write_bytes(dump_packet(signed) + b"\n")  # one final newline, as editors add, is fine
    assert verify_file(f, keyring.directory).ok
    assert verify_bytes(dump_packet(signed), keyring.directory).ok  # a directory of keys
    assert verify_bytes(dump_packet(signed), str(keyring.directory)).ok


def test_the_signature_block(signed, keyring):
    sig = signed["signature"]
    assert set(sig) == {"alg", "key_id", "public_key", "value"} and sig["alg"] == "Ed25519"
    raw = base64.b64decode(sig["public_key"])
    assert sig["key_id"] == hashlib.sha256(raw).hexdigest()[:16] == keyring.key_id
    assert len(base64.b64decode(sig["value"])) == 64
    # signing is over everything but the signature: signing again gives the same packet
    assert keyring.sign(signed) == signed


def _mutations(data: bytes, positions: list[int]) -> list[bytes]:
    out = []
    for k, i in enumerate(positions):
        b = data[i]
        choices = [b ^ 0x01, b ^ 0x20, ord("e"), ord("0"), ord(" "), b ^ 0x80]
        new = next(c for c in choices[k % len(choices):] + choices if c != b)
        out.append(data[:i] + bytes([new]) + data[i + 1:])
    return out


def test_changing_one_byte_anywhere_fails(signed, keyring):
    data = dump_packet(signed)
    rng = random.Random(7)
    positions = sorted(set(range(0, len(data), max(len(data) // 1500, 1))) | set(rng.sample(range(len(data)), 500))
                       | set(range(len(data) - 300, len(data))) | set(range(0, 300)))
    keys = trusted(keyring)
    passed = [i for i, m in zip(positions, _mutations(data, positions), strict=True) if verify_bytes(m, keys).ok]
    assert passed == [], f"{len(passed)} one-byte changes went unnoticed, e.g. at {passed[:5]}"
    assert len(positions) > 1500


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_single_byte_change_fails(signed_bytes_and_keys, data):
    raw, keys = signed_bytes_and_keys
    i = data.draw(st.integers(0, len(raw) - 1))
    b = data.draw(st.integers(0, 255).filter(lambda x: x != raw[i]))
    assert not verify_bytes(raw[:i] + bytes([b]) + raw[i + 1:], keys).ok


@pytest.fixture(scope="module")
def signed_bytes_and_keys(tmp_path_factory, _seed_body):
    kr = fixed_keyring(tmp_path_factory.mktemp("k"), 3)
    return dump_packet(kr.sign(_seed_body)), trusted(kr)


def test_edits_that_keep_the_json_meaning_still_fail(signed, keyring):
    data = dump_packet(signed)
    m = re.search(rb"(?<=[:,\[])(-?[0-9]+)(?=[,}\]])", data)  # a whole number like -15 somewhere
    assert m is not None
    same_value = data[:m.start()] + m.group(1) + b".0" + data[m.end():]  # the same number to a JSON parser
    assert orjson.loads(same_value) == orjson.loads(data)
    v = verify_bytes(same_value, trusted(keyring))
    assert not v.ok and "byte-for-byte" in v.problems[0]
    pretty = orjson.dumps(signed, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    v = verify_bytes(pretty, trusted(keyring))
    assert not v.ok and len(v.problems) == 1 and "reformatted" in v.problems[0]


def test_a_truncated_file_fails(signed, keyring, tmp_path):
    data = dump_packet(signed)
    f = tmp_path / "p.json"
    for n in (0, 1, len(data) // 2, len(data) - 2, len(data) - 1):
        f.write_bytes(data[:n])
        v = verify_file(f, keyring.directory)
        assert not v.ok and v.problems, n


def test_a_packet_re_signed_with_another_key_is_refused(signed, keyring, other_keyring):
    forged = copy.deepcopy(signed)
    forged["case"]["denial_reason"] = "no dispute"
    forged["manifest"] = manifest_for(forged)
    forged = other_keyring.sign(forged)
    v = verify(forged, trusted(keyring))
    assert not v.ok
    assert v.problems == [f"signed by an unknown key {other_keyring.key_id}: not one of the 1 trusted key(s)"]
    assert verify(forged, trusted(other_keyring)).ok  # it is a good signature, by the wrong key


def test_a_section_edited_with_its_manifest_recomputed_but_not_re_signed_fails(signed, keyring):
    forged = copy.deepcopy(signed)
    forged["track"]["points"] = forged["track"]["points"][:-10]
    forged["manifest"] = manifest_for(unsigned(forged))
    v = verify(forged, trusted(keyring))
    assert not v.ok and len(v.problems) == 1 and "signature does not match" in v.problems[0]


def test_every_problem_is_reported(signed, keyring):
    forged = copy.deepcopy(signed)
    forged["assessment"]["phase"] = "delivering"
    forged["figures"]["map.svg"] += " "
    del forged["orders"]
    forged["signature"]["alg"] = "RSA"
    v = verify(forged, [])
    text = "\n".join(v.problems)
    for expected in ("section 'assessment' does not match", "figure 'map.svg' does not match",
                     "section 'orders' missing", "signature algorithm 'RSA'", "signed by an unknown key",
                     "none given", "signature does not match"):
        assert expected in text
    assert "INVALID" in v.report() and v.report().count("\n  - ") == len(v.problems)


def test_a_key_id_that_is_not_the_keys_own_fails(signed, keyring):
    forged = copy.deepcopy(signed)
    forged["signature"]["key_id"] = "0" * 16
    v = verify(forged, trusted(keyring))
    assert not v.ok and "does not belong to its public key" in v.problems[0]


def test_base64_must_be_written_the_one_canonical_way(signed, keyring):
    value = signed["signature"]["value"]  # 64 bytes: 86 characters and "=="; the last one has unused bits
    raw = base64.b64decode(value)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twin = next(v for v in (value[:85] + c + "==" for c in alphabet) if v != value and base64.b64decode(v) == raw)
    forged = copy.deepcopy(signed)
    forged["signature"]["value"] = twin
    v = verify(forged, trusted(keyring))
    assert not v.ok and "not base64 of 64 bytes" in "\n".join(v.problems)


@pytest.mark.parametrize("content", [b"", b"not json", b"[1, 2]", b"{}", b'{"format": "xianjie.evidence-packet/1"}',
                                     b"\xff\xfe\x00", b"null", b'"a string"'])
def test_bad_files_give_problems_not_exceptions(tmp_path, keyring, content):
    f = tmp_path / "bad.json"
    f.write_bytes(content)
    v = verify_file(f, keyring.directory)
    assert not v.ok and v.problems and all(isinstance(p, str) and p for p in v.problems)


def test_a_missing_file_or_key_folder(tmp_path, signed, keyring):
    v = verify_file(tmp_path / "nope.json", keyring.directory)
    assert not v.ok and "cannot read" in v.problems[0]
    f = tmp_path / "p.json"
    f.write_bytes(dump_packet(signed))
    v = verify_file(f, tmp_path / "no-keys-here")
    assert not v.ok and "unknown key" in v.problems[0]
    assert verify_file(f, None, keys=[keyring.public_key_b64]).ok
    v = verify_file(f, None, keys=["not a key"])
    assert not v.ok and "not a base64 Ed25519 public key" in v.problems[0]


def test_a_key_ring_makes_a_private_key_once(tmp_path):
    d = tmp_path / "ring"
    a = KeyRing(d)
    assert stat.S_IMODE((d / PRIVATE_FILE).stat().st_mode) == 0o600
    b = KeyRing(d)
    assert a.public_key_b64 == b.public_key_b64 and a.key_id == b.key_id
    assert a.key_id == hashlib.sha256(base64.b64decode(a.public_key_b64)).hexdigest()[:16]
    jwk = a.public_jwk()
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and jwk["kid"] == a.key_id
    assert base64.urlsafe_b64decode(jwk["x"] + "=") == base64.b64decode(a.public_key_b64)
    assert serialization.load_pem_public_key(a.public_pem().encode())
    assert (d / PUBLIC_FILE).read_text() == a.public_pem()
    assert published_keys(d) == [a.public_key_b64]
    with pytest.raises(FileNotFoundError):
        KeyRing(tmp_path / "empty", create=False)


def test_key_rings_created_at_once_agree(tmp_path):
    d = tmp_path / "race"
    rings: list[KeyRing] = []
    threads = [threading.Thread(target=lambda: rings.append(KeyRing(d))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.public_key_b64 for r in rings}) == 1
    assert sorted(p.name for p in d.iterdir()) == sorted([PRIVATE_FILE, PUBLIC_FILE, JWK_FILE])


def test_a_loose_private_key_is_tightened(tmp_path):
    d = tmp_path / "ring"
    KeyRing(d)
    (d / PRIVATE_FILE).chmod(0o644)
    KeyRing(d)
    assert stat.S_IMODE((d / PRIVATE_FILE).stat().st_mode) == 0o600


def test_published_keys_read_public_files_of_many_keys(tmp_path, keyring, other_keyring):
    pub = tmp_path / "insurer-trusts"
    pub.mkdir()
    (pub / "current.pem").write_text(keyring.public_pem())
    (pub / "old.jwk.json").write_bytes(orjson.dumps({"keys": [other_keyring.public_jwk()]}))
    (pub / "README.txt").write_text("keys of the Xianjie mediation office")
    (pub / "broken.pem").write_text("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n")
    assert published_keys(pub) == sorted([keyring.public_key_b64, other_keyring.public_key_b64])
    assert published_keys(tmp_path / "missing") == []


def test_a_public_key_in_any_usual_form(keyring):
    k = keyring.public_key_b64
    assert public_key_from_text(k) == k
    assert public_key_from_text(keyring.public_pem()) == k
    assert public_key_from_text((keyring.directory / PRIVATE_FILE).read_text()) == k
    assert public_key_from_text(orjson.dumps(keyring.public_jwk()).decode()) == k
    for bad in ("", "abc", base64.b64encode(b"x" * 31).decode()):
        with pytest.raises(ValueError):
            public_key_from_text(bad)
