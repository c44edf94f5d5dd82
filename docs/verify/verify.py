"""Verify a Xianjie evidence packet (format xianjie.evidence-packet/2) in Python.
Usage: python verify.py PACKET.json PUBLIC_KEY_BASE64   (exit 0 valid, 1 invalid)
Needs: pip install rfc8785 cryptography"""

import base64
import json
import sys

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

with open(sys.argv[1], "rb") as f:
    packet = json.load(f)
signature = base64.b64decode(packet.pop("signature")["value"])
signed = rfc8785.dumps(packet)  # RFC 8785 form of everything but the signature
key = Ed25519PublicKey.from_public_bytes(base64.b64decode(sys.argv[2]))
try:
    key.verify(signature, signed)
except InvalidSignature:
    print("INVALID")
    sys.exit(1)
print("VALID")
