"""Delivery channels behind one port: ``async send(notification) -> DeliveryResult``.

A channel never raises for a delivery problem: it answers a failed DeliveryResult (with
``permanent`` when retrying cannot help). The dispatcher bounds each send with the channel's
timeout, so a hanging peer costs one slot for that long and nothing else.
"""

from __future__ import annotations

from typing import Protocol

from services.notify.domain.model import DeliveryResult, Notification


class ChannelPort(Protocol):
    async def send(self, notification: Notification) -> DeliveryResult: ...

    async def aclose(self) -> None: ...
