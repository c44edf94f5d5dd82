"""The trajectory service's composition root: its settings, store (migrated once, here), upload
intake, gap flagger and bus subscriptions, wired once. ``bootstrap()`` takes what it is given
(settings, an engine, a bus) and makes the rest from the environment; an entrypoint or the
embedded wiring calls it and runs what it returns."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from sqlalchemy.engine import Engine

from services.trajectory.adapters.store import FeedStore, open_store
from services.trajectory.domain.model import Params
from services.trajectory.entrypoints import api
from services.trajectory.entrypoints import worker as runtime
from services.trajectory.service_layer.flagging import UploadFlagger
from services.trajectory.settings import TrajectorySettings
from shared.bus import Bus, make_bus
from shared.db import engine_for

logger = logging.getLogger(__name__)


@dataclass
class Trajectory:
    settings: TrajectorySettings
    store: FeedStore
    bus: Bus
    flagger: UploadFlagger

    def router(self, authorize: Callable[..., Any]) -> APIRouter:
        """``POST /api/v1/feeds/*``, guarded by ``authorize``; each stored upload wakes the flagger."""
        return api.make_router(self.store, authorize, self.settings.timezone,
                               on_stored=lambda i: self.flagger.touched(i.spans))

    async def run_uploads(self, stop: asyncio.Event) -> None:
        """What the process taking uploads runs: the gap flagger of uploaded feeds."""
        await self.flagger.run(stop)

    async def run_handlers(self, stop: asyncio.Event) -> None:
        """The service's bus handlers (assessment requests, feeds on the bus) and retention, on the
        embedded bus (on Kafka the faust worker of :mod:`services.trajectory.entrypoints.stream` runs them)."""
        await runtime.run_embedded(self.bus, self.store, self.settings, stop)


def bootstrap(*, settings: TrajectorySettings | None = None, engine: Engine | None = None, bus: Bus | None = None,
              params: Params | None = None) -> Trajectory:
    settings = settings or TrajectorySettings()
    store = open_store(engine if engine is not None else engine_for(settings))
    bus = bus if bus is not None else make_bus(settings)

    async def publish(topic: str, key: str, value: bytes) -> None:
        await bus.publish(topic, key, value)

    flagger = UploadFlagger(store, publish, params or Params(), settings.timezone,
                            gps_wait_s=settings.gap_gps_wait_s, quiet_s=settings.gap_quiet_s,
                            lease_s=settings.gap_lease_s)
    return Trajectory(settings, store, bus, flagger)


__all__ = ["Trajectory", "bootstrap"]
