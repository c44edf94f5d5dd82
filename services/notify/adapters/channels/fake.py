"""A scripted channel for tests: records what it is asked to send and answers from a script
(results, exceptions, or delays), then succeeds."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from services.notify.domain.model import DeliveryResult, Notification

Step = DeliveryResult | BaseException | float  # a float: hang that many seconds, then succeed


@dataclass
class RecordingChannel:
    script: list[Step] = field(default_factory=list)
    sent: list[Notification] = field(default_factory=list)
    calls: list[Notification] = field(default_factory=list)
    per_recipient: dict[str, list[Step]] = field(default_factory=dict)

    def plan(self, recipient: str, steps: Sequence[Step]) -> None:
        self.per_recipient[recipient] = list(steps)

    async def send(self, notification: Notification) -> DeliveryResult:
        self.calls.append(notification)
        steps = self.per_recipient.get(notification.recipient, self.script)
        step = steps.pop(0) if steps else DeliveryResult.sent()
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, float | int):
            await asyncio.sleep(float(step))
            step = DeliveryResult.sent()
        if step.ok:
            self.sent.append(notification)
        return step

    async def aclose(self) -> None:
        return None
