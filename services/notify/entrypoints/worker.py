"""The notify worker: subscribes to case events (group ``notify``) and runs the dispatcher.
``run`` is what ``python -m services up`` starts in-process and ``python -m services.notify
worker`` runs on its own."""

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
from shared.topics import CASE_EVENTS

logger = logging.getLogger(__name__)


@dataclass
class NotifyApp:
    store: SqlNotificationStore
    directory: SqlInsurerDirectory
    recorder: Recorder
    dispatcher: Dispatcher
    channels: Mapping[str, ChannelPort]

    async def aclose(self) -> None:
        for ch in self.channels.values():
            try:
                await ch.aclose()
            except Exception:
                logger.exception("closing a channel")


def policy_of(settings: NotifySettings) -> RetryPolicy:
    return RetryPolicy(max_attempts=settings.notify_max_attempts, base=settings.notify_backoff_base,
                       cap=settings.notify_backoff_cap)


def build(engine: Engine, settings: Settings, *,
          channels: Mapping[str, ChannelPort] | None = None) -> NotifyApp:
    """Notify's parts on this engine (schema migrated to head first). ``settings`` may be any
    shared Settings (notify's own are then read from the environment)."""
    settings = notify_settings(settings)
    migrate.upgrade(engine)
    store = SqlNotificationStore(engine)
    directory = SqlInsurerDirectory(engine)
    recorder = Recorder(store=store, directory=directory, renderer=TemplateRenderer(settings.timezone),
                        settings=settings)
    channels = channels if channels is not None else build_channels(settings, directory)
    dispatcher = Dispatcher(store=store, channels=channels, policy=policy_of(settings),
                            timeouts=settings.timeouts(), concurrency=settings.notify_concurrency,
                            per_recipient=settings.notify_per_recipient,
                            poll=settings.notify_poll)
    return NotifyApp(store, directory, recorder, dispatcher, channels)


def wire(bus: Bus, engine: Engine, settings: Settings, *,
         channels: Mapping[str, ChannelPort] | None = None) -> NotifyApp:
    """Build and subscribe to CASE_EVENTS in group ``notify`` (before the bus starts, ideally)."""
    app = build(engine, settings, channels=channels)
    bus.subscribe(CASE_EVENTS, notify_settings(settings).notify_group, make_handler(app.recorder, app.dispatcher.wake))
    return app


async def run(bus: Bus, engine: Engine, settings: Settings, stop_event: asyncio.Event, *,
              channels: Mapping[str, ChannelPort] | None = None) -> None:
    """Subscribe (synchronously, before the first await) and send until ``stop_event``.
    Does not start or stop the bus: its owner does."""
    try:
        app = wire(bus, engine, settings, channels=channels)
    except Exception:
        logger.exception("notify worker could not start")  # a task's death is otherwise silent
        raise
    logger.info("notify worker running", extra={"smtp": settings.smtp_host, "sms": settings.sms_gateway_url})
    digest = asyncio.create_task(daily_digest(lambda day: app.recorder.record_digests(day=day), app.dispatcher.wake,
                                              notify_settings(settings), stop_event), name="digest")
    try:
        await app.dispatcher.run(stop_event)
    except Exception:
        logger.exception("notify worker stopped on an error")
        raise
    finally:
        digest.cancel()
        await app.aclose()

