"""Wiring of notify's core on its fakes, for unit tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.notify.adapters.channels.fake import RecordingChannel
from services.notify.adapters.memory import InMemoryInsurerDirectory, InMemoryNotificationStore
from services.notify.adapters.render import TemplateRenderer
from services.notify.domain.model import Draft
from services.notify.domain.retry import RetryPolicy
from services.notify.service_layer.dispatcher import Dispatcher
from services.notify.service_layer.recorder import Recorder
from services.notify.settings import NotifySettings

from .builders import BASE, T0


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def draft(recipient: str = "a@x.example", channel: str = "email", event_id: str | None = None, **kw: Any) -> Draft:
    return Draft(**{"id": str(uuid.uuid4()), "event_id": event_id or str(uuid.uuid4()), "case_id": "case-1",
                    "role": "mediator", "channel": channel, "recipient": recipient, "template": "t",
                    "lang": "zh", "subject": "s", "body": "b", "case_number": "XJ-1", **kw})


@dataclass
class Core:
    clock: Clock = field(default_factory=Clock)
    store: InMemoryNotificationStore = field(default_factory=InMemoryNotificationStore)
    directory: InMemoryInsurerDirectory = field(default_factory=InMemoryInsurerDirectory)
    email: RecordingChannel = field(default_factory=RecordingChannel)
    sms: RecordingChannel = field(default_factory=RecordingChannel)
    webhook: RecordingChannel = field(default_factory=RecordingChannel)
    settings: NotifySettings = field(default_factory=lambda: NotifySettings(public_base_url=BASE))

    def __post_init__(self) -> None:
        self.directory.clock = self.clock
        self.recorder = Recorder(store=self.store, directory=self.directory, renderer=TemplateRenderer(),
                                 settings=self.settings, clock=self.clock)

    def dispatcher(self, *, max_attempts: int = 3, timeout: float = 1.0, concurrency: int = 10,
                   rand: float = 0.5) -> Dispatcher:
        return Dispatcher(store=self.store, channels={"email": self.email, "sms": self.sms, "webhook": self.webhook},
                          policy=RetryPolicy(max_attempts=max_attempts, base=10.0, cap=100.0),
                          timeouts={"email": timeout, "sms": timeout, "webhook": timeout},
                          concurrency=concurrency, clock=self.clock, rand=lambda: rand, lease_margin=60.0)
