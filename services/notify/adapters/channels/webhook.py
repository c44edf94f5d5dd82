"""Webhooks into insurers' claims systems: a signed JSON POST (Standard Webhooks). The URL and
secrets are looked up at each attempt, so a retry after a rotation is signed with the new
secret, and a retry after the URL changed goes to the new one."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from services.notify.adapters.channels import signing
from services.notify.adapters.channels.http import HttpPoster
from services.notify.adapters.channels.ssrf import GuardedResolver, acheck_target
from services.notify.domain.model import DeliveryResult, InsurerChannel, Notification
from services.notify.domain.ports import InsurerDirectory

logger = logging.getLogger(__name__)


class WebhookChannel:
    """``directory_ttl``: how long an insurer's URL and secrets are reused before being read
    again (a rotation keeps the previous secret valid for hours; a second is nothing)."""

    def __init__(self, directory: InsurerDirectory, *, timeout: float = 10.0, max_connections: int = 100,
                 clock: Callable[[], float] = time.time, directory_ttl: float = 1.0,
                 allow_private: bool = False) -> None:
        self.directory = directory
        self.allow_private = allow_private
        self.clock = clock
        self.ttl = directory_ttl
        self._cache: dict[str, tuple[float, InsurerChannel | None]] = {}
        self.http = HttpPoster(timeout=timeout, max_connections=max_connections,
                               resolver=None if allow_private else GuardedResolver())

    async def _target(self, code: str) -> InsurerChannel | None:
        hit = self._cache.get(code)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        target = await asyncio.to_thread(self.directory.get, code)
        if self.ttl > 0:
            self._cache[code] = (now, target)
        return target

    async def send(self, notification: Notification) -> DeliveryResult:
        code = notification.recipient
        target = await self._target(code)
        if target is None or not target.webhook_url:
            return DeliveryResult.failed(f"no webhook configured for insurer {code}", permanent=True)
        if not target.secrets:
            return DeliveryResult.failed(f"no valid webhook secret for insurer {code}", permanent=True)
        why = await acheck_target(target.webhook_url, allow_private=self.allow_private)
        if why is not None:  # checked again at each send: DNS may have changed since registration
            return DeliveryResult.failed(why, permanent=True)
        body = notification.body.encode()
        headers = {"content-type": "application/json",
                   **signing.headers(target.secrets, notification.id, int(self.clock()), body)}
        return await self.http.post(target.webhook_url, body, headers)

    async def aclose(self) -> None:
        await self.http.aclose()
