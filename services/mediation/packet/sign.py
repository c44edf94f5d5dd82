"""Signing and verifying evidence packets (Ed25519, with the ``cryptography`` package).

The signature covers the canonical JSON (see ``canonical``: RFC 8785 in the current format
``xianjie.evidence-packet/2``, orjson's sorted compact JSON in the earlier ``/1``, which is still
verified) of the whole packet except its ``signature`` member, manifest included; the manifest's digests tie each section and figure to
it, so an edit anywhere shows either as a wrong digest or as a bad signature. The signature block
names the key (``key_id``: the first 16 hex digits of SHA-256 of the raw 32-byte public key) and
carries the public key itself, but a packet is only valid if that key is one the verifier trusts:
anyone can sign, only the published keys count.

Keys live in a directory (``KeyRing``): ``packet-signing-key.pem`` holds the private key
(PKCS#8 PEM, mode 0600, created on first use), ``packet-signing-key.pub.pem`` and
``packet-signing-key.jwk.json`` the public key to publish. ``published_keys(dir)`` reads every
key of a directory (private or public PEM files, JWK or JWK Set files), so an insurer can drop the
published files of any number of keys, old and current, into one folder.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.mediation.packet.canonical import (
    FIGURES,
    FORMAT,
    FORMATS,
    MANIFEST_ALGORITHM,
    SECTIONS,
    CanonicalError,
    canonical_json,
    format_of,
    section_digest,
    signed_bytes,
    unsigned,
)

logger = logging.getLogger(__name__)

PRIVATE_FILE = "packet-signing-key.pem"
PUBLIC_FILE = "packet-signing-key.pub.pem"
JWK_FILE = "packet-signing-key.jwk.json"
ALG = "Ed25519"
_SIGNATURE_FIELDS = {"alg", "key_id", "public_key", "value"}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _strict_b64(text: Any, size: int | None = None) -> bytes | None:
    """The bytes of standard padded base64 that is written exactly as ``_b64`` would write it;
    None otherwise. (Lenient decoders ignore the unused low bits of the last character, so two
    texts can decode to the same bytes: only the canonical one is accepted.)"""
    if not isinstance(text, str):
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if _b64(raw) != text or (size is not None and len(raw) != size):
        return None
    return raw


def key_id_of(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class KeyRing:
    """The packet-signing key of a directory: loaded, or created (mode 0600) on first use."""

    def __init__(self, directory: str | os.PathLike[str], *, create: bool = True) -> None:
        self.directory = Path(directory)
        self.private_path = self.directory / PRIVATE_FILE
        if not self.private_path.exists():
            if not create:
                raise FileNotFoundError(f"no signing key in {self.directory}")
            self._create()
        self._private = self._load()
        self._public_raw = _raw_public(self._private.public_key())
        self._publish()

    def _create(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        # written whole to a private temporary file, then linked into place: another process
        # creating the key at the same time either wins (we then load its key) or loses
        fd, tmp = tempfile.mkstemp(prefix=".key-", dir=self.directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, self.private_path)
                logger.info("created packet-signing key", extra={"path": str(self.private_path)})
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)

    def _load(self) -> Ed25519PrivateKey:
        mode = stat.S_IMODE(self.private_path.stat().st_mode)
        if mode & 0o077:
            logger.warning("signing key readable by others; setting mode 0600",
                           extra={"path": str(self.private_path), "mode": oct(mode)})
            os.chmod(self.private_path, 0o600)
        key = serialization.load_pem_private_key(self.private_path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{self.private_path} is not an Ed25519 private key")
        return key

    def _publish(self) -> None:
        """Write the public files when they are missing or stale (never the private key)."""
        for name, data in ((PUBLIC_FILE, self.public_pem().encode("ascii")),
                           (JWK_FILE, orjson.dumps(self.public_jwk(), option=orjson.OPT_INDENT_2) + b"\n")):
            path = self.directory / name
            try:
                if path.exists() and path.read_bytes() == data:
                    continue
                path.write_bytes(data)
            except OSError as e:  # a read-only key folder still signs
                logger.warning("cannot write public key file", extra={"path": str(path), "error": str(e)})

    @property
    def public_key_b64(self) -> str:
        """The raw 32-byte public key, standard base64."""
        return _b64(self._public_raw)

    @property
    def key_id(self) -> str:
        return key_id_of(self._public_raw)

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK (RFC 8037)."""
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(self._public_raw), "kid": self.key_id,
                "alg": "EdDSA", "use": "sig"}

    def public_pem(self) -> str:
        return self._private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")

    def sign(self, body: dict[str, Any]) -> dict[str, Any]:
        """The signed packet: the body (any previous signature dropped) plus ``signature``, over
        the RFC 8785 form of the body. Only the current format is made (ValueError otherwise)."""
        content = unsigned(body)
        if content.get("format") != FORMAT:
            raise ValueError(f"only packets of format {FORMAT!r} are signed, not {content.get('format')!r}")
        value = self._private.sign(canonical_json(content))
        return {**content, "signature": {"alg": ALG, "key_id": self.key_id, "public_key": self.public_key_b64,
                                         "value": _b64(value)}}


# ----------------------------------------------------------------------------------------------
# public keys


def public_key_from_text(text: str) -> str:
    """A public key given as base64 (raw 32 bytes), PEM (public or private), or JWK, as base64.
    Raises ValueError when it is none of these."""
    s = text.strip()
    if s.startswith("-----BEGIN"):
        data = s.encode("ascii")
        if "PRIVATE" in s:
            priv = serialization.load_pem_private_key(data, password=None)
            if not isinstance(priv, Ed25519PrivateKey):
                raise ValueError("not an Ed25519 key")
            return _b64(_raw_public(priv.public_key()))
        pub = serialization.load_pem_public_key(data)
        if not isinstance(pub, Ed25519PublicKey):
            raise ValueError("not an Ed25519 key")
        return _b64(_raw_public(pub))
    if s.startswith("{"):
        keys = _jwk_keys(orjson.loads(s))
        if len(keys) != 1:
            raise ValueError("expected exactly one Ed25519 JWK")
        return keys[0]
    raw = _strict_b64(s, 32)
    if raw is None:
        raise ValueError("not a base64 Ed25519 public key (32 bytes)")
    return _b64(raw)


def _jwk_keys(obj: Any) -> list[str]:
    items = obj.get("keys", [obj]) if isinstance(obj, dict) else []
    out = []
    for k in items:
        if isinstance(k, dict) and k.get("kty") == "OKP" and k.get("crv") == "Ed25519" and isinstance(k.get("x"), str):
            x = k["x"]
            raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
            if len(raw) == 32:
                out.append(_b64(raw))
    return out


def published_keys(directory: str | os.PathLike[str]) -> list[str]:
    """The public keys (base64) of every key file in a directory: ``*.pem`` (private or public
    Ed25519) and ``*.json`` (JWK or JWK Set). Unreadable or foreign files are skipped."""
    d = Path(directory)
    if not d.is_dir():
        return []
    found: set[str] = set()
    for path in sorted(d.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        try:
            if path.suffix == ".pem":
                found.add(public_key_from_text(path.read_text("ascii")))
            elif path.suffix == ".json":
                found.update(_jwk_keys(orjson.loads(path.read_bytes())))
        except (OSError, ValueError, TypeError, UnicodeDecodeError) as e:
            logger.debug("not a key file", extra={"path": str(path), "error": str(e)})
    return sorted(found)


# ----------------------------------------------------------------------------------------------
# verification


@dataclass(frozen=True)
class Verdict:
    ok: bool
    problems: list[str] = field(default_factory=list)
    key_id: str | None = None
    packet_id: str | None = None
    case_number: str | None = None

    def report(self) -> str:
        """Plain words for a terminal: the verdict, then one line per problem."""
        who = f"evidence packet {self.packet_id or '?'}" + (f" (case {self.case_number})" if self.case_number else "")
        if self.ok:
            return f"VALID: {who}, signed by trusted key {self.key_id}; every section matches its digest."
        lines = [f"INVALID: {who}: {len(self.problems)} problem(s)"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


def _short(h: Any) -> str:
    return f"{h[:16]}…" if isinstance(h, str) and len(h) > 16 else repr(h)


Trusted = Iterable[str] | str | os.PathLike[str]


def trusted_keys(trusted: Trusted) -> list[str]:
    """The keys to trust: base64 public keys as given, or those published in a directory (a
    ``Path``, or a string naming an existing directory)."""
    if isinstance(trusted, os.PathLike) or (isinstance(trusted, str) and Path(trusted).is_dir()):
        return published_keys(trusted)
    if isinstance(trusted, str):
        return [trusted]
    return list(trusted)


def verify(packet: Any, trusted: Trusted) -> Verdict:
    """Check a parsed packet: its format, every manifest digest against its section, the
    signature, and that the signing key is one of ``trusted`` (base64 raw public keys, or a
    directory of published keys). Every problem found is reported, not only the first. Never
    raises."""
    problems: list[str] = []
    if not isinstance(packet, dict):
        return Verdict(False, [f"not an evidence packet: expected a JSON object, found {type(packet).__name__}"])
    packet_id = packet.get("packet_id") if isinstance(packet.get("packet_id"), str) else None
    case = packet.get("case")
    case_number = case.get("case_number") if isinstance(case, dict) and isinstance(case.get("case_number"), str) else None
    if packet.get("format") not in FORMATS:
        problems.append(f"unknown format {packet.get('format')!r}: expected {FORMAT!r} "
                        f"(or an earlier {', '.join(repr(f) for f in FORMATS if f != FORMAT)})")
    fmt = format_of(packet)

    # the manifest
    manifest = packet.get("manifest")
    if not isinstance(manifest, dict):
        problems.append("no manifest")
    else:
        if manifest.get("algorithm") != MANIFEST_ALGORITHM:
            problems.append(f"manifest algorithm {manifest.get('algorithm')!r}: expected {MANIFEST_ALGORITHM!r}")
        digests = manifest.get("sections")
        if not isinstance(digests, dict):
            problems.append("manifest lists no sections")
            digests = {}
        figures = packet.get("figures")
        if not isinstance(figures, dict):
            problems.append("no figures")
            figures = {}
        for name in (*SECTIONS, *FIGURES):
            if name not in digests:
                problems.append(f"manifest lacks section {name!r}")
        for name in sorted(set(digests) - set(SECTIONS) - set(FIGURES)):
            problems.append(f"manifest lists unknown section {name!r}")
        for name in (*SECTIONS, *FIGURES):
            holder = figures if name in FIGURES else packet
            where = f"figure {name!r}" if name in FIGURES else f"section {name!r}"
            if name not in holder:
                problems.append(f"{where} missing from the packet")
                continue
            try:
                actual = section_digest(name, holder[name], fmt)
            except (TypeError, CanonicalError):
                problems.append(f"{where} cannot be digested (wrong type)")
                continue
            if name in digests and digests[name] != actual:
                problems.append(f"{where} does not match its manifest digest (manifest {_short(digests[name])}, "
                                f"actual {_short(actual)}): it was changed")

    # the signature
    key_id: str | None = None
    sig = packet.get("signature")
    trusted_raw: set[bytes] = set()
    for k in trusted_keys(trusted):
        raw = _strict_b64(k, 32)
        if raw is None:
            problems.append(f"trusted key {str(k)[:24]!r} is not a base64 Ed25519 public key")
        else:
            trusted_raw.add(raw)
    if not isinstance(sig, dict):
        problems.append("not signed: no signature")
    else:
        for extra in sorted(set(sig) - _SIGNATURE_FIELDS):
            problems.append(f"unexpected field {extra!r} in the signature")
        if sig.get("alg") != ALG:
            problems.append(f"signature algorithm {sig.get('alg')!r}: expected {ALG!r}")
        pub = _strict_b64(sig.get("public_key"), 32)
        value = _strict_b64(sig.get("value"), 64)
        if pub is None:
            problems.append("the signature's public key is not a base64 Ed25519 key")
        else:
            key_id = key_id_of(pub)
            if sig.get("key_id") != key_id:
                problems.append(f"the signature's key_id {sig.get('key_id')!r} does not belong to its public key "
                                f"(which is {key_id})")
            if pub not in trusted_raw:
                problems.append(f"signed by an unknown key {key_id}: not one of the {len(trusted_raw)} trusted "
                                "key(s)" + (" (none given: pass the published key)" if not trusted_raw else ""))
        if value is None:
            problems.append("the signature value is not base64 of 64 bytes")
        if pub is not None and value is not None:
            try:
                Ed25519PublicKey.from_public_bytes(pub).verify(value, signed_bytes(packet))
            except InvalidSignature:
                problems.append("the signature does not match the packet's content: the packet was changed "
                                "after it was signed")
            except (TypeError, ValueError) as e:
                problems.append(f"the packet's content cannot be checked: {e}")
    return Verdict(not problems, problems, key_id, packet_id, case_number)


def verify_bytes(data: bytes, trusted: Trusted) -> Verdict:
    """Check a packet file's bytes: JSON, written exactly as exported (the canonical JSON of its
    format, optionally one final newline), and ``verify``. Never raises."""
    text = data[:-1] if data.endswith(b"\n") else data
    try:
        packet = orjson.loads(text)
    except orjson.JSONDecodeError as e:
        return Verdict(False, [f"not a JSON document ({e}); the file is damaged or truncated"])
    problems: list[str] = []
    if isinstance(packet, dict):
        try:
            exact = canonical_json(packet, format_of(packet)) == text
        except CanonicalError:
            exact = False
        if not exact:
            form = "RFC 8785 canonical JSON" if format_of(packet) == FORMAT else "canonical JSON"
            problems.append(f"the file is not byte-for-byte the packet as exported ({form}: sorted keys, "
                            "no spaces): it was reformatted or edited; use the original file")
    v = verify(packet, trusted_keys(trusted))
    problems += v.problems
    return Verdict(not problems, problems, v.key_id, v.packet_id, v.case_number)


def verify_file(path: str | os.PathLike[str], trusted_dir: str | os.PathLike[str] | None = None, *,
                keys: Iterable[str] = ()) -> Verdict:
    """Check a packet file against the keys published in ``trusted_dir`` plus ``keys`` (base64).
    Every problem becomes part of the verdict; nothing raises."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return Verdict(False, [f"cannot read {path}: {e.strerror or e}"])
    trusted = list(keys)
    if trusted_dir is not None:
        trusted += published_keys(trusted_dir)
    return verify_bytes(data, trusted)
