"""Packet formats: the current one (/2) is signed over RFC 8785 (JCS) bytes that any JCS library
reproduces; packets of the earlier format (/1, orjson's sorted compact JSON) still verify."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.mediation.packet import FORMAT, FORMAT_V1, dump_packet, verify_bytes, verify_file
from services.mediation.packet.canonical import (
    CanonicalError,
    canonical_json,
    manifest_for,
    section_digest,
    signed_bytes,
    unsigned,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[4]
OLD = ROOT / "tests" / "data" / "packets" / "v1-seed-case.json"
OLD_KEYS = ROOT / "tests" / "data" / "packets" / "v1-keys"


@pytest.mark.parametrize(("value", "jcs"), [
    ({"clock_skew_s": -6.0}, b'{"clock_skew_s":-6}'),
    ([11.0, 1.0, 0.0, -0.0, 0.9, 114.705929, 1e21, 1e-7, 123456789012.0], b"[11,1,0,0,0.9,114.705929,1e+21,1e-7,123456789012]"),
    ({"b": 1, "a": {"d": True, "c": None}, "é": "李明\u2028\n\"\\"}, '{"a":{"c":null,"d":true},"b":1,"é":"李明\u2028\\n\\"\\\\"}'.encode()),
    ({"\U0001f600": 1, "\uffff": 2}, '{"\U0001f600":1,"\uffff":2}'.encode()),  # UTF-16 order: the surrogate pair first
])
def test_canonical_json_is_rfc_8785(value, jcs):
    assert canonical_json(value) == jcs
    assert canonical_json(value, FORMAT) == jcs


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**53, {1: 2}, {"a": object()}])
def test_values_without_a_canonical_form_are_refused(value):
    with pytest.raises(CanonicalError):
        canonical_json(value)


def test_an_unknown_format_has_no_canonical_form():
    with pytest.raises(CanonicalError, match="unknown packet format"):
        canonical_json({}, "xianjie.evidence-packet/9")


def test_a_new_packet_is_signed_over_its_jcs_form(signed, keyring):
    assert signed["format"] == FORMAT == "xianjie.evidence-packet/2"
    data = dump_packet(signed)
    assert data == rfc8785.dumps(signed)
    parsed = orjson.loads(data)
    # what an insurer does: parse the file, drop the signature, canonicalise, check Ed25519
    body = rfc8785.dumps({k: v for k, v in parsed.items() if k != "signature"})
    assert body == signed_bytes(signed) == canonical_json(unsigned(signed))
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(parsed["signature"]["public_key"]))
    key.verify(base64.b64decode(parsed["signature"]["value"]), body)  # raises if wrong
    # whole-number floats (the clock skew, distances, confidences) are written as JavaScript does
    assert b'"clock_skew_s":-6,' in data
    no_strings = re.sub(rb'"(?:[^"\\]|\\.)*"', b'""', data)  # SVG text holds "1.0" and the like
    assert re.search(rb"[0-9]\.0[,}\]]", no_strings) is None
    assert signed["manifest"] == manifest_for(signed)
    assert signed["manifest"]["sections"]["assessment"] == section_digest("assessment", signed["assessment"])


def test_only_the_current_format_is_signed(seed_body, keyring):
    with pytest.raises(ValueError, match="only packets of format"):
        keyring.sign({**seed_body, "format": FORMAT_V1})


def test_an_old_format_packet_still_verifies():
    data = OLD.read_bytes()
    packet = orjson.loads(data)
    assert packet["format"] == FORMAT_V1 and b'"clock_skew_s":' in data and b".0," in data
    v = verify_file(OLD, OLD_KEYS)
    assert v.ok, v.problems
    assert v.key_id == packet["signature"]["key_id"] and v.case_number == "XJ-2025-000123"
    assert dump_packet(packet) + b"\n" == data  # the old form is still written the old way


def _change_a_digit(data: bytes, after: bytes) -> bytes:
    i = data.index(after) + len(after)
    while not data[i:i + 1].isdigit():
        i += 1
    digit = b"7" if data[i:i + 1] != b"7" else b"3"
    return data[:i] + digit + data[i + 1:]


def test_an_old_format_packet_with_a_changed_digit_fails():
    data = _change_a_digit(OLD.read_bytes(), b'"distance_m":')
    v = verify_bytes(data, OLD_KEYS)
    assert not v.ok and any("assessment" in p for p in v.problems)
    assert any("signature does not match" in p for p in v.problems)


def test_an_old_packet_relabelled_as_new_fails(keyring):
    packet = orjson.loads(OLD.read_bytes())
    relabelled = {**packet, "format": FORMAT}
    v = verify_bytes(rfc8785.dumps(relabelled), OLD_KEYS)
    assert not v.ok and any("signature does not match" in p for p in v.problems)


def test_a_new_packet_written_the_old_way_fails(signed, keyring):
    old_way = orjson.dumps(signed, option=orjson.OPT_SORT_KEYS)
    assert old_way != dump_packet(signed)
    v = verify_bytes(old_way, [keyring.public_key_b64])
    assert not v.ok and "RFC 8785" in v.problems[0]


@pytest.mark.parametrize("which", ["old", "new"])
def test_packets_verify_accepts_both_formats(which, signed, keyring, tmp_path):
    if which == "old":
        path, keys = tmp_path / "old.json", OLD_KEYS
        shutil.copy(OLD, path)
    else:
        path, keys = tmp_path / "new.json", keyring.directory
        path.write_bytes(dump_packet(signed))
    cli = [sys.executable, "-m", "services.mediation", "packets", "verify", str(path), "--keys", str(keys)]
    env = {**os.environ, "XJ_DATA_DIR": str(tmp_path / "var")}
    r = subprocess.run(cli, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("VALID"), r.stdout + r.stderr
    path.write_bytes(_change_a_digit(path.read_bytes(), b'"distance_m":'))
    r = subprocess.run(cli, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stdout.startswith("INVALID"), r.stdout + r.stderr
