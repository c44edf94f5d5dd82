"""Browser sessions: one signed cookie (itsdangerous, HMAC over a key kept under XJ_DATA_DIR)
holding the signed-in user's id, a fingerprint of his token (so that replacing or disabling the
token ends his sessions), a per-session CSRF token, and a one-shot message for the next page.
Nothing secret is in the cookie: it is signed, not encrypted.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

logger = logging.getLogger(__name__)

COOKIE = "xj_session"
LANG_COOKIE = "xj_lang"
KEY_FILE = "web-session.key"
MAX_AGE_S = 12 * 3600  # a working day; then sign in again
LANG_MAX_AGE_S = 365 * 24 * 3600


def load_or_create_secret(directory: Path) -> bytes:
    """The session-signing key of this deployment (created once, mode 0600). Every process of
    the deployment reads the same file, so sessions survive restarts and work across workers."""
    path = directory / KEY_FILE
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".web-key-", dir=directory)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
            with contextlib.suppress(FileExistsError):  # another process won the race: use its key
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    key = path.read_text().strip()
    if len(key) < 32:
        raise ValueError(f"{path} holds no usable key; delete it to make a new one")
    return key.encode()


@dataclass
class WebSession:
    data: dict[str, Any] = field(default_factory=dict)
    modified: bool = False

    @property
    def csrf(self) -> str:
        token = self.data.get("csrf")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(24)
            self.data["csrf"] = token
            self.modified = True
        return token

    def csrf_ok(self, sent: object) -> bool:
        token = self.data.get("csrf")
        return isinstance(token, str) and isinstance(sent, str) and hmac.compare_digest(token, sent)

    @property
    def user_id(self) -> str | None:
        uid = self.data.get("uid")
        return uid if isinstance(uid, str) else None

    def sign_in(self, user_id: str, token_fingerprint: str) -> None:
        # a fresh session: new CSRF token, nothing carried over from before sign-in
        self.data = {"uid": user_id, "tfp": token_fingerprint, "at": int(time.time()),
                     "csrf": secrets.token_urlsafe(24)}
        self.modified = True

    def sign_out(self) -> None:
        self.data = {"csrf": secrets.token_urlsafe(24)}
        self.modified = True

    def flash(self, kind: str, key: str, **params: str) -> None:
        self.data["flash"] = [kind, key, params]
        self.modified = True

    def pop_flash(self) -> tuple[str, str, dict[str, str]] | None:
        f = self.data.pop("flash", None)
        if f is None:
            return None
        self.modified = True
        if isinstance(f, list) and len(f) == 3 and isinstance(f[2], dict):
            return str(f[0]), str(f[1]), {str(k): str(v) for k, v in f[2].items()}
        return None


class Sessions:
    def __init__(self, secret: bytes, *, https: bool = False) -> None:
        self.serializer = URLSafeTimedSerializer(secret, salt="xianjie.web.session")
        self.https = https  # XJ_PUBLIC_BASE_URL is https: always mark cookies Secure

    def load(self, request: Request) -> WebSession:
        raw = request.cookies.get(COOKIE)
        if raw:
            try:
                data = self.serializer.loads(raw, max_age=MAX_AGE_S)
                if isinstance(data, dict):
                    return WebSession(data)
            except BadSignature:
                logger.info("session cookie rejected (bad signature or expired)")
        return WebSession()

    def secure(self, request: Request) -> bool:
        return self.https or request.url.scheme == "https"

    def save(self, response: Response, session: WebSession, request: Request) -> None:
        if not session.modified:
            return
        response.set_cookie(COOKIE, self.serializer.dumps(session.data), httponly=True, samesite="lax",
                            secure=self.secure(request), path="/")

    def set_lang(self, response: Response, lang: str, request: Request) -> None:
        response.set_cookie(LANG_COOKIE, lang, max_age=LANG_MAX_AGE_S, httponly=True, samesite="lax",
                            secure=self.secure(request), path="/")
