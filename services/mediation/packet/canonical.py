"""The one byte form of a packet that digests and signatures are computed over.

Format ``xianjie.evidence-packet/2`` (current): canonical JSON is RFC 8785, the JSON
Canonicalization Scheme (JCS), as the ``rfc8785`` package writes it: object members sorted by the
UTF-16 code units of their names at every level, no whitespace, strings as UTF-8 with only the
escapes JCS prescribes, numbers as ECMAScript's ``Number.prototype.toString`` writes them (so
``-6.0`` is ``-6``, ``11.0`` is ``11``, ``1e21`` is ``1e+21``), ``true``/``false``/``null``.
Integers must lie within ±(2**53 - 1) and floats be finite (JCS refuses anything else; the packet
builder never puts such values in). Any standard JCS library reproduces these bytes: Java's
``io.github.erdtman:java-json-canonicalization``, npm's ``canonicalize``, Go's
``github.com/cyberphone/json-canonicalization`` (docs/verify.md shows Java, JavaScript and Python).

Format ``xianjie.evidence-packet/1`` (packets made before): canonical JSON was
``orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)`` (whole-number floats written ``-6.0``), which
only orjson reproduces. Such packets are still verified, in that form; none are made any more.

A packet *file* is exactly the canonical JSON (of its format) of the signed packet
(``dump_packet``), optionally followed by one newline. Its SHA-256 (``packet_sha256``) is what the
PDF metadata and the case record quote. The signature is over the canonical JSON of the packet
without its ``signature`` member; each manifest digest is over the canonical JSON of one section
(or the UTF-8 bytes of one figure's SVG text).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import rfc8785

FORMAT = "xianjie.evidence-packet/2"
FORMAT_V1 = "xianjie.evidence-packet/1"
FORMATS = (FORMAT, FORMAT_V1)
SECTIONS = ("case", "assessment", "coverage", "timeline", "orders", "track")
FIGURES = ("map.svg", "timeline.svg")
MANIFEST_ALGORITHM = "SHA-256"


class CanonicalError(ValueError):
    """A value that has no canonical form (a float that is not finite, an integer beyond ±2**53,
    a key that is not a string, a type JSON does not have), or an unknown format."""


def canonical_json(obj: Any, fmt: str = FORMAT) -> bytes:
    """The canonical bytes of a JSON value in the form of packet format ``fmt`` (see the module's
    docstring): RFC 8785 for the current format. Raises CanonicalError."""
    if fmt == FORMAT:
        try:
            return rfc8785.dumps(obj)
        except rfc8785.CanonicalizationError as e:
            raise CanonicalError(str(e)) from e
    if fmt == FORMAT_V1:
        try:
            return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
        except (TypeError, orjson.JSONEncodeError) as e:
            raise CanonicalError(str(e)) from e
    raise CanonicalError(f"unknown packet format {fmt!r}: expected one of {', '.join(FORMATS)}")


def format_of(packet: Any) -> str:
    """The packet's format if it is one this code knows (current or earlier), else the current one
    (so that an unknown or missing format is checked, and reported, as the current form)."""
    fmt = packet.get("format") if isinstance(packet, dict) else None
    return fmt if isinstance(fmt, str) and fmt in FORMATS else FORMAT


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def section_digest(name: str, value: Any, fmt: str = FORMAT) -> str:
    """Digest of one manifest entry: the canonical JSON of a data section, or the UTF-8 bytes of a
    figure's SVG text (so that ``sha256sum map.svg`` of an extracted figure gives the same)."""
    if name in FIGURES:
        if not isinstance(value, str):
            raise TypeError(f"figure {name} must be SVG text")
        return sha256_hex(value.encode("utf-8"))
    return sha256_hex(canonical_json(value, fmt))


def manifest_for(body: dict[str, Any]) -> dict[str, Any]:
    """The manifest of a body holding every section and ``figures``, in the body's format."""
    fmt = format_of(body)
    sections = {name: section_digest(name, body[name], fmt) for name in SECTIONS}
    for name in FIGURES:
        sections[name] = section_digest(name, body["figures"][name], fmt)
    return {"algorithm": MANIFEST_ALGORITHM, "sections": sections}


def unsigned(packet: dict[str, Any]) -> dict[str, Any]:
    """The body: everything except the signature."""
    return {k: v for k, v in packet.items() if k != "signature"}


def signed_bytes(packet: dict[str, Any]) -> bytes:
    """The bytes the signature is over: the canonical JSON, in the packet's format, of the packet
    without its ``signature`` member."""
    return canonical_json(unsigned(packet), format_of(packet))


def dump_packet(packet: dict[str, Any]) -> bytes:
    """The bytes of a packet file."""
    return canonical_json(packet, format_of(packet))


def packet_sha256(packet: dict[str, Any]) -> str:
    """SHA-256 of the packet file's bytes (``dump_packet``)."""
    return sha256_hex(dump_packet(packet))
