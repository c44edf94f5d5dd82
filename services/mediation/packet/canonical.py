"""The one byte form of a packet that digests and signatures are computed over.

Canonical JSON here is ``orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)``: keys sorted by code
point at every level, no whitespace, strings as UTF-8 (non-ASCII kept, not ``\\u`` escaped),
floats in their shortest round-trip form (``0.9``, ``114.705929``, ``-15.0``), integers as integers,
``true``/``false``/``null``. orjson refuses NaN and infinity (they become ``null``); the packet
builder never puts them in. Anyone can reproduce these bytes in another language by sorting keys
and serialising compactly, as long as floats are written the shortest round-trip way.

A packet *file* is exactly the canonical JSON of the signed packet (``dump_packet``), optionally
followed by one newline. Its SHA-256 (``packet_sha256``) is what the PDF metadata and the case
record quote.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

FORMAT = "xianjie.evidence-packet/1"
SECTIONS = ("case", "assessment", "coverage", "timeline", "orders", "track")
FIGURES = ("map.svg", "timeline.svg")
MANIFEST_ALGORITHM = "SHA-256"


def canonical_json(obj: Any) -> bytes:
    """The canonical bytes of a JSON value (see the module's docstring)."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def section_digest(name: str, value: Any) -> str:
    """Digest of one manifest entry: the canonical JSON of a data section, or the UTF-8 bytes of a
    figure's SVG text (so that ``sha256sum map.svg`` of an extracted figure gives the same)."""
    if name in FIGURES:
        if not isinstance(value, str):
            raise TypeError(f"figure {name} must be SVG text")
        return sha256_hex(value.encode("utf-8"))
    return sha256_hex(canonical_json(value))


def manifest_for(body: dict[str, Any]) -> dict[str, Any]:
    """The manifest of a body holding every section and ``figures``."""
    sections = {name: section_digest(name, body[name]) for name in SECTIONS}
    for name in FIGURES:
        sections[name] = section_digest(name, body["figures"][name])
    return {"algorithm": MANIFEST_ALGORITHM, "sections": sections}


def unsigned(packet: dict[str, Any]) -> dict[str, Any]:
    """The body: everything except the signature."""
    return {k: v for k, v in packet.items() if k != "signature"}


def dump_packet(packet: dict[str, Any]) -> bytes:
    """The bytes of a packet file."""
    return canonical_json(packet)


def packet_sha256(packet: dict[str, Any]) -> str:
    """SHA-256 of the packet file's bytes (``dump_packet``)."""
    return sha256_hex(dump_packet(packet))
