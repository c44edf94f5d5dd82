"""The notify worker: subscribed to case events (group ``notify``), it records what each party is
to be told and runs the dispatcher. ``run`` is what ``python -m services up`` starts in-process and
``python -m services.notify worker`` runs on its own."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from sqlalchemy.engine import Engine

from services.notify.adapters.channels import ChannelPort
from shared.bus import Bus
from shared.config import Settings

logger = logging.getLogger(__name__)


async def run(bus: Bus, engine: Engine | None, settings: Settings | None, stop_event: asyncio.Event, *,
              channels: Mapping[str, ChannelPort] | None = None) -> None:
    """Subscribe (synchronously, before the first await) and send until ``stop_event``.
    Does not start or stop the bus: its owner does."""
    from services.notify.bootstrap import bootstrap

    try:
        notify = bootstrap(settings=settings, engine=engine, bus=bus, channels=channels)
    except Exception:
        logger.exception("notify worker could not start")  # a task's death is otherwise silent
        raise
    logger.info("notify worker running", extra={"smtp": notify.settings.smtp_host,
                                                "sms": notify.settings.sms_gateway_url})
    try:
        await notify.run(stop_event)
    except Exception:
        logger.exception("notify worker stopped on an error")
        raise
