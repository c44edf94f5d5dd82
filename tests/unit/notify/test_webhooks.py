"""Webhook secrets, rotation, and signatures (checked by the independent ``standardwebhooks``
implementation)."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from services.notify.adapters.channels.signing import headers, sign, signature
from services.notify.domain.errors import WebhookConfigError
from services.notify.domain.webhooks import (
    SecretEntry,
    check_url,
    rotate,
    secret_bytes,
    valid_secrets,
)

pytestmark = pytest.mark.unit

DAY = 86400.0


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def test_secret_format() -> None:
    s = new_secret()
    assert len(secret_bytes(s)) == 32
    for bad in ["", "abc", "whsec_", "whsec_!!!notbase64", "whsec_" + base64.b64encode(b"short").decode(),
                "whsec_" + base64.b64encode(b"x" * 65).decode()]:
        with pytest.raises(WebhookConfigError) as e:
            secret_bytes(bad)
        assert e.value.field == "secret"


def test_url_format() -> None:
    assert check_url("https://claims.picc.example/hooks") == "https://claims.picc.example/hooks"
    for bad in ["ftp://x", "claims.example", "http://", "javascript:alert(1)"]:
        with pytest.raises(WebhookConfigError):
            check_url(bad)


def test_signature_verifies_with_standardwebhooks() -> None:
    s = new_secret()
    body = '{"type":"case.opened","data":{"case_number":"XJ-1","text":"已受理"}}'.encode()
    now = int(datetime.now(UTC).timestamp())
    h = headers([s], "msg_1", now, body)
    assert Webhook(s).verify(body, h) == {"type": "case.opened", "data": {"case_number": "XJ-1", "text": "已受理"}}
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, h)
    with pytest.raises(WebhookVerificationError):
        Webhook(s).verify(body + b" ", h)


def test_signature_matches_the_reference_signer() -> None:
    s = new_secret()
    ts = 1_700_000_000
    ref = Webhook(s).sign("msg_2", datetime.fromtimestamp(ts, UTC), "{}")
    assert signature(s, "msg_2", ts, b"{}") == ref


def test_several_secrets_several_signatures_each_verifies() -> None:
    old, new = new_secret(), new_secret()
    body = b'{"a":1}'
    now = int(datetime.now(UTC).timestamp())
    h = headers([new, old], "msg_3", now, body)
    assert len(h["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(body, h)
    Webhook(new).verify(body, h)
    with pytest.raises(ValueError):
        sign([], "m", now, body)


def test_rotation_keeps_the_previous_secret_for_the_overlap() -> None:
    a, b, c = new_secret(), new_secret(), new_secret()
    t = 1000.0
    entries = rotate([], a, now=t, overlap_s=DAY)
    assert valid_secrets(entries, t) == (a,)
    entries = rotate(entries, b, now=t + 10, overlap_s=DAY)
    assert valid_secrets(entries, t + 10) == (b, a)
    assert valid_secrets(entries, t + 10 + DAY - 1) == (b, a)
    assert valid_secrets(entries, t + 10 + DAY + 1) == (b,)
    # a third secret within the overlap: a stays until its own end, b gets a full overlap
    entries = rotate(entries, c, now=t + 20, overlap_s=DAY)
    assert valid_secrets(entries, t + 20) == (c, b, a)
    assert valid_secrets(entries, t + 10 + DAY + 1) == (c, b)
    # expired entries are dropped at the next rotation
    later = rotate(entries, a, now=t + 3 * DAY, overlap_s=DAY)
    assert [e.secret for e in later] == [a, c]


def test_setting_the_current_secret_again_changes_nothing() -> None:
    a = new_secret()
    entries = rotate([], a, now=0.0, overlap_s=DAY)
    assert rotate(entries, a, now=50.0, overlap_s=DAY) == entries


def test_going_back_to_the_previous_secret_makes_it_current() -> None:
    a, b = new_secret(), new_secret()
    entries = rotate(rotate([], a, now=0.0, overlap_s=DAY), b, now=1.0, overlap_s=DAY)
    back = rotate(entries, a, now=2.0, overlap_s=DAY)
    assert back[0] == SecretEntry(a, 2.0, None)
    assert valid_secrets(back, 2.0 + DAY + 5) == (a,)


def test_zero_overlap_drops_the_old_secret_at_once() -> None:
    a, b = new_secret(), new_secret()
    entries = rotate(rotate([], a, now=0.0, overlap_s=DAY), b, now=1.0, overlap_s=0)
    assert valid_secrets(entries, 1.0) == (b,)
