"""Wiring of the trajectory service: settings, its database, its subscriptions on the bus, retention.

``run_embedded`` runs it inside another process on a bus that process owns (``python -m services up``
on the in-process bus). A faust worker (issue 5) reuses the same pieces: ``TrajectorySettings``,
``open_store`` and the handlers of :mod:`services.trajectory.service_layer.handlers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from services.trajectory.adapters.store import FeedStore, Purged, migrate
from services.trajectory.domain.model import Params
from services.trajectory.service_layer import handlers as service
from shared import topics
from shared.bus import Bus, Message, dead_letter_copy
from shared.config import Settings

logger = logging.getLogger(__name__)

GROUP = "trajectory"


class TrajectorySettings(Settings):
    """The shared settings plus the trajectory service's own (``XJ_`` prefix)."""

    retention_days: float = 30.0  # XJ_RETENTION_DAYS: feeds received longer ago are deleted unless held
    purge_every_s: float = 3600.0  # XJ_PURGE_EVERY_S: how often retention (and compaction) runs
    compact_lookback_s: float = 2 * 86400.0  # XJ_COMPACT_LOOKBACK_S: compaction merges rider-hours with chunks received this recently
    feed_batch: int = 500  # XJ_FEED_BATCH: feed messages per handler call
    gps_batch: int = 20_000  # XJ_GPS_BATCH: rider.gps records per batch of the Kafka worker
    request_batch: int = 16  # XJ_REQUEST_BATCH: assessment requests per handler call
    feed_within_s: float = 0.2  # XJ_FEED_WITHIN_S: the worker's batch waits at most this long
    partitions: int = 6  # XJ_PARTITIONS: partitions of the topics the worker declares
    gap_settle_s: float = 0.5  # XJ_GAP_SETTLE_S: wait before classifying a closed gap (pings in flight)
    gap_sync_max_s: float = 30.0  # XJ_GAP_SYNC_MAX_S: longest wait for the feeds on the broker to be stored before a gap is judged or a request answered (the request then fails, saying to ask again)
    gap_gps_wait_s: float = 600.0  # XJ_GAP_GPS_WAIT_S: an uploaded gap waits this long for the rider's GPS to reach past it before it is judged on what is stored
    gap_quiet_s: float = 2.0  # XJ_GAP_QUIET_S: a rider's uploaded gaps are looked for once his uploads were quiet this long
    gap_lease_s: float = 60.0  # XJ_GAP_LEASE_S: a gap claimed and not flagged after this is taken again
    gap_sweep_s: float = 15.0  # XJ_GAP_SWEEP_S: how often unflagged gaps are looked for
    gap_rebuild_s: float = 6 * 3600.0  # XJ_GAP_REBUILD_S: platform events a starting worker replays
    worker_group: str = "xianjie-trajectory"  # XJ_WORKER_GROUP: faust app id = consumer group
    worker_web_port: int = 0  # XJ_WORKER_WEB_PORT: the worker's health endpoint (faust web); 0: off


def open_store(engine: Engine) -> FeedStore:
    """The store on ``engine``, its schema upgraded to the latest revision."""
    migrate(engine)
    return FeedStore(engine)


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
