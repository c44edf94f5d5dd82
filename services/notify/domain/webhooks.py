"""Webhook secrets and their rotation. A secret is ``whsec_`` + base64 of 24 to 64 random bytes
(Standard Webhooks). Setting a new secret keeps the previous one valid for an overlap (24 h by
default) so an insurer can switch its verifier without losing a message; meanwhile every
message carries one signature per valid secret."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from services.notify.domain.errors import WebhookConfigError

PREFIX = "whsec_"


@dataclass(frozen=True)
class SecretEntry:
    secret: str
    since: float  # epoch seconds
    until: float | None = None  # None: current; else valid until then (epoch seconds)


def secret_bytes(secret: str) -> bytes:
    """The key of a ``whsec_`` secret; WebhookConfigError if it is not one."""
    if not isinstance(secret, str) or not secret.startswith(PREFIX):
        raise WebhookConfigError("secret", "a webhook secret starts with whsec_")
    raw = secret[len(PREFIX):]
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise WebhookConfigError("secret", "a webhook secret is base64 after whsec_") from e
    if not 24 <= len(key) <= 64:
        raise WebhookConfigError("secret", f"a webhook secret holds 24 to 64 bytes, not {len(key)}")
    return key


def check_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as e:  # e.g. "http://[": urlsplit's "Invalid IPv6 URL"
        raise WebhookConfigError("url", f"a webhook URL that cannot be read: {e}") from e
    if parts.scheme not in ("http", "https") or not host:
        raise WebhookConfigError("url", "a webhook URL is http:// or https:// with a host")
    if len(url) > 2000:
        raise WebhookConfigError("url", "a webhook URL is at most 2000 characters")
    return url


def rotate(entries: Sequence[SecretEntry], new: str, *, now: float, overlap_s: float) -> list[SecretEntry]:
    """The secrets after ``new`` is set at ``now``: new first and current; the one that was
    current stays valid for ``overlap_s``; expired ones are dropped. Setting the current secret
    again changes nothing; setting one still in its overlap makes it current again."""
    secret_bytes(new)
    live = [e for e in entries if e.until is None or e.until > now]
    current = next((e for e in live if e.until is None), None)
    if current is not None and current.secret == new:
        return live
    out = [SecretEntry(new, now, None)]
    for e in live:
        if e.secret == new:
            continue
        until = now + overlap_s if e.until is None else min(e.until, now + overlap_s)
        if until > now:
            out.append(SecretEntry(e.secret, e.since, until))
    return out


def valid_secrets(entries: Sequence[SecretEntry], now: float) -> tuple[str, ...]:
    """The secrets to sign with at ``now``, current first."""
    live = [e for e in entries if e.until is None or e.until > now]
    live.sort(key=lambda e: (e.until is not None, -(e.until or 0.0), -e.since))
    return tuple(e.secret for e in live)
