"""docs/verify.md's examples, run as an insurer would run them, on a packet made by `make demo`'s
path (``python -m services demo``): the Java one (JDK Ed25519 + java-json-canonicalization and
Jackson from Maven Central), the Node one (node:crypto + npm's canonicalize) and the Python one
(rfc8785 + cryptography) each accept the packet and reject it with one digit changed.

The Java libraries are fetched with Maven into docs/verify/lib/ and the npm package with `npm ci`
into docs/verify/node_modules/ (both ignored by git, fetched again when pom.xml or
package-lock.json change). Without java, mvn, node or npm these tests skip, except under CI=true,
where they fail."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from services.mediation.packet.sign import public_key_from_text, verify_bytes
from tests.conftest import IN_CI

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "verify"


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        why = f"{', '.join(missing)} not found: the verification examples need them"
        if IN_CI:
            pytest.fail(f"CI=true but {why} (.ci/run installs them)")
        pytest.skip(why)


def _fetched(stamp: Path, source: Path) -> bool:
    return stamp.exists() and stamp.read_text() == hashlib.sha256(source.read_bytes()).hexdigest()


def _run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def java_lib() -> Path:
    _need("java", "javac", "mvn")  # javac: `java Verify.java` compiles the source file in memory
    lib, stamp = EXAMPLES / "lib", EXAMPLES / "lib" / ".fetched"
    if not _fetched(stamp, EXAMPLES / "pom.xml"):
        tmp = EXAMPLES / f"lib.tmp.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        r = _run(["mvn", "-q", "-B", "dependency:copy-dependencies", f"-DoutputDirectory={tmp}"], EXAMPLES)
        assert r.returncode == 0, f"mvn could not fetch the example's libraries:\n{r.stdout}\n{r.stderr}"
        stamp_text = hashlib.sha256((EXAMPLES / "pom.xml").read_bytes()).hexdigest()
        (tmp / ".fetched").write_text(stamp_text)
        shutil.rmtree(lib, ignore_errors=True)
        tmp.rename(lib)
        shutil.rmtree(EXAMPLES / "target", ignore_errors=True)
    return lib


@pytest.fixture(scope="session")
def node_modules() -> Path:
    _need("node", "npm")
    modules, stamp = EXAMPLES / "node_modules", EXAMPLES / "node_modules" / ".fetched"
    if not _fetched(stamp, EXAMPLES / "package-lock.json"):
        r = _run(["npm", "ci", "--no-audit", "--no-fund"], EXAMPLES)
        assert r.returncode == 0, f"npm ci failed:\n{r.stdout}\n{r.stderr}"
        stamp.write_text(hashlib.sha256((EXAMPLES / "package-lock.json").read_bytes()).hexdigest())
    return modules


@pytest.fixture(scope="session")
def demo_packet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(the demo's packet file, the same with one digit changed, its signing key as base64)."""
    r = _run([sys.executable, "-m", "services", "demo"], ROOT, timeout=600)
    assert r.returncode == 0, f"the demo failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    demo = ROOT / "var" / "demo"
    (packet,) = demo.glob("*.packet.json")
    key = public_key_from_text((demo / "keys" / "packet-signing-key.pub.pem").read_text())
    out = tmp_path_factory.mktemp("packets")
    good = out / "packet.json"
    shutil.copy(packet, good)
    data = good.read_bytes()
    assert orjson.loads(data)["format"] == "xianjie.evidence-packet/2"
    m = re.search(rb'"gps_points_raw":[0-9]*([0-9])', data)  # the last digit of a number in the assessment
    assert m is not None
    digit = b"7" if m.group(1) != b"7" else b"3"
    bad = out / "changed-digit.json"
    bad.write_bytes(data[:m.start(1)] + digit + data[m.end(1):])
    assert verify_bytes(data, [key]).ok and not verify_bytes(bad.read_bytes(), [key]).ok
    return good, bad, key


def _check(cmd: list[str], demo_packet: tuple[Path, Path, str]) -> None:
    good, bad, key = demo_packet
    r = _run([*cmd, str(good), key], EXAMPLES)
    assert (r.returncode, r.stdout.strip()) == (0, "VALID"), r.stdout + r.stderr
    r = _run([*cmd, str(bad), key], EXAMPLES)
    assert (r.returncode, r.stdout.strip()) == (1, "INVALID"), r.stdout + r.stderr
    other_key = "O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik="  # RFC 8032's test key 1: not ours
    r = _run([*cmd, str(good), other_key], EXAMPLES)
    assert (r.returncode, r.stdout.strip()) == (1, "INVALID"), r.stdout + r.stderr


def test_the_java_example_verifies_a_demo_packet(java_lib, demo_packet):
    _check(["java", "-cp", f"{java_lib}/*", "Verify.java"], demo_packet)


def test_the_node_example_verifies_a_demo_packet(node_modules, demo_packet):
    _check(["node", "verify.mjs"], demo_packet)


def test_the_python_example_verifies_a_demo_packet(demo_packet):
    _check([sys.executable, "verify.py"], demo_packet)


@pytest.mark.parametrize("name", ["Verify.java", "verify.mjs", "verify.py"])
def test_each_example_is_short_and_shown_in_the_docs(name):
    lines = (EXAMPLES / name).read_text().splitlines()
    assert len(lines) < 30
    doc = (ROOT / "docs" / "verify.md").read_text()
    assert f"verify/{name}" in doc and (EXAMPLES / name).read_text() in doc  # the docs show the file as it is
