"""The trajectory service's worker on a :class:`shared.bus.Bus`: its subscriptions (feeds and
assessment requests, group ``trajectory``) and retention.

``run_embedded`` runs it inside a process whose bus it does not own (``python -m services up`` on
the in-process bus). On Kafka the faust worker (:mod:`services.trajectory.entrypoints.stream`)
calls the same handlers of :mod:`services.trajectory.service_layer.handlers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from services.trajectory.adapters.store import FeedStore, Purged
from services.trajectory.domain.model import Params
from services.trajectory.service_layer import handlers as service
from services.trajectory.settings import TrajectorySettings
from shared import topics
from shared.bus import Bus, Message, dead_letter_copy

logger = logging.getLogger(__name__)

GROUP = "trajectory"


def dead_letterer(bus: Bus, group: str = GROUP) -> service.Reject:
    """A ``reject`` for the handlers: the message goes to its topic's dead-letter topic with the
    reason, in the same headers the bus itself uses."""
    async def reject(m: Message, reason: str) -> None:
        await bus.publish(topics.dead_letter(m.topic), m.key, *dead_letter_copy(m, reason, group))
    return reject


@dataclass
class Subscriptions:
    store: FeedStore
    settings: TrajectorySettings
    params: Params
    bus: Bus

    async def feeds(self, batch: Sequence[Message]) -> None:
        r = await service.handle_feed_batch(self.store, batch, tz=self.settings.timezone,
                                            reject=dead_letterer(self.bus))
        logger.debug("feeds: %d messages, %d new pings, %d new events, %d rejected",
                     r.messages, r.pings_stored, r.events_stored, r.rejected)

    async def requests(self, batch: Sequence[Message]) -> None:
        await service.handle_assessment_requests(self.store, self.bus, batch, self.params, self.settings.timezone,
                                                 reject=dead_letterer(self.bus))


def subscribe(bus: Bus, store: FeedStore, settings: TrajectorySettings, params: Params | None = None) -> Subscriptions:
    """Subscribe the trajectory handlers on ``bus`` in group ``trajectory``."""
    subs = Subscriptions(store, settings, params or Params(), bus)
    bus.subscribe(topics.GPS, GROUP, subs.feeds, batch=settings.feed_batch)
    bus.subscribe(topics.PLATFORM_EVENTS, GROUP, subs.feeds, batch=settings.feed_batch)
    bus.subscribe(topics.ASSESSMENT_REQUESTED, GROUP, subs.requests, batch=settings.request_batch)
    return subs


async def purge_once(store: FeedStore, settings: TrajectorySettings, now: float | None = None) -> Purged:
    cutoff = (time.time() if now is None else now) - settings.retention_days * 86400.0
    purged = await asyncio.to_thread(store.purge, cutoff)
    logger.info("retention: deleted %d pings, %d platform events, %d replies received before %.0f",
                purged.pings, purged.events, purged.replies, cutoff)
    at = time.time() if now is None else now
    merged = await asyncio.to_thread(store.compact, at - settings.compact_lookback_s, at - 3600.0)
    logger.info("compaction: %d rider-hours of GPS fixes merged from %d chunks", merged.groups, merged.chunks)
    return purged


async def _retention(store: FeedStore, settings: TrajectorySettings, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), settings.purge_every_s)
        if stop.is_set():
            return
        try:
            await purge_once(store, settings)
        except Exception:  # retention fails this time; feeds are kept, it runs again later
            logger.exception("retention run failed")


async def run_embedded(bus: Bus, store: FeedStore, settings: TrajectorySettings, stop_event: asyncio.Event) -> None:
    """Run the trajectory service's handlers on ``bus`` until ``stop_event`` is set: subscribes them
    (the caller starts and stops the bus, before or after this is called) and runs retention every
    ``purge_every_s``."""
    tset = settings
    subscribe(bus, store, tset)
    logger.info("trajectory service subscribed (group %s, retention %.0f days)", GROUP, tset.retention_days)
    retention = asyncio.create_task(_retention(store, tset, stop_event), name="trajectory:retention")
    try:
        await stop_event.wait()
    finally:
        retention.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await retention
