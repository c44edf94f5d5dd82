"""Standard Webhooks signatures: ``webhook-signature`` is a space-separated list of
``v1,`` + base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")), one per valid secret (several
during a rotation), the key being the bytes of the base64 after ``whsec_``."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from services.notify.domain.webhooks import secret_bytes


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret_bytes(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    if not secrets:
        raise ValueError("no secret to sign with")
    return " ".join(signature(s, msg_id, timestamp, body) for s in secrets)


def headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(secrets, msg_id, timestamp, body)}
