"""The notify service's composition root: settings, its tables (migrated once, here), store, insurer
directory, recorder, channels and dispatcher, and its subscription to case events when given a
bus. ``bootstrap()`` takes what it is given and makes the rest from the environment; the worker,
the command line and the embedded wiring call it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from services.notify.adapters import migrate
from services.notify.adapters.channels import ChannelPort
from services.notify.adapters.channels.build import build_channels
from services.notify.adapters.render import TemplateRenderer
from services.notify.adapters.sql import SqlInsurerDirectory, SqlNotificationStore
from services.notify.domain.retry import RetryPolicy
from services.notify.entrypoints.scheduler import daily_digest
from services.notify.service_layer.dispatcher import Dispatcher
from services.notify.service_layer.recorder import Recorder, make_handler
from services.notify.settings import NotifySettings, notify_settings
from shared.bus import Bus
from shared.config import Settings
from shared.db import engine_for
from shared.topics import CASE_EVENTS

logger = logging.getLogger(__name__)


@dataclass
class Notify:
    settings: NotifySettings
    engine: Engine
    store: SqlNotificationStore
    directory: SqlInsurerDirectory
    recorder: Recorder
    dispatcher: Dispatcher
    channels: Mapping[str, ChannelPort]

    async def run(self, stop: asyncio.Event) -> None:
        """Send what is due, and record the daily digests on time, until ``stop``; then close the
        channels. Does not start or stop the bus: its owner does."""
        digest = asyncio.create_task(daily_digest(lambda day: self.recorder.record_digests(day=day),
                                                  self.dispatcher.wake, self.settings, stop), name="digest")
        try:
            await self.dispatcher.run(stop)
        finally:
            digest.cancel()
            await self.aclose()

    async def aclose(self) -> None:
        for ch in self.channels.values():
            try:
                await ch.aclose()
            except Exception:
                logger.exception("closing a channel")


def policy_of(settings: NotifySettings) -> RetryPolicy:
    return RetryPolicy(max_attempts=settings.notify_max_attempts, base=settings.notify_backoff_base,
                       cap=settings.notify_backoff_cap)


def bootstrap(*, settings: Settings | None = None, engine: Engine | None = None, bus: Bus | None = None,
              channels: Mapping[str, ChannelPort] | None = None) -> Notify:
    """Notify's parts. ``settings`` may be any shared Settings (notify's own are then read from the
    environment). With a ``bus``, subscribes to case events in group ``XJ_NOTIFY_GROUP`` (call it
    before the bus starts)."""
    ns = notify_settings(settings) if settings is not None else NotifySettings()
    engine = engine if engine is not None else engine_for(ns)
    migrate.upgrade(engine)
    store = SqlNotificationStore(engine)
    directory = SqlInsurerDirectory(engine)
    recorder = Recorder(store=store, directory=directory, renderer=TemplateRenderer(ns.timezone), settings=ns)
    channels = channels if channels is not None else build_channels(ns, directory)
    dispatcher = Dispatcher(store=store, channels=channels, policy=policy_of(ns), timeouts=ns.timeouts(),
                            concurrency=ns.notify_concurrency, per_recipient=ns.notify_per_recipient,
                            poll=ns.notify_poll)
    if bus is not None:
        bus.subscribe(CASE_EVENTS, ns.notify_group, make_handler(recorder, dispatcher.wake))
    return Notify(ns, engine, store, directory, recorder, dispatcher, channels)


__all__ = ["Notify", "bootstrap", "policy_of"]
