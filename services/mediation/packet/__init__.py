"""Evidence packets: the signed, self-checking record of what the trajectory shows about an
incident (format ``xianjie.evidence-packet/2``, signed over its RFC 8785 form; packets of the
earlier ``/1`` still verify), its figures, and its printable PDF.

``build_packet`` (pure) -> ``KeyRing.sign`` -> ``dump_packet`` (the file) -> ``verify_file``;
``render_pdf`` prints a signed packet.
"""

from services.mediation.packet.body import build_packet
from services.mediation.packet.canonical import (
    FORMAT,
    FORMAT_V1,
    canonical_json,
    dump_packet,
    packet_sha256,
)
from services.mediation.packet.sign import (
    KeyRing,
    Verdict,
    published_keys,
    verify,
    verify_bytes,
    verify_file,
)

__all__ = [
    "FORMAT", "FORMAT_V1", "KeyRing", "Verdict", "build_packet", "canonical_json", "dump_packet", "packet_sha256",
    "published_keys", "verify", "verify_bytes", "verify_file",
]
