"""The mediation service's composition root: settings, its tables (migrated once, here), the case
service, the HTTP app's container, its bus subscriptions (assessments, gap flags) and background
work (the outbox relay, the overdue scheduler). ``bootstrap()`` takes what it is given and makes
the rest from the environment; the command line and the embedded wiring call it.

The HTTP app carries mediation's API and pages; a deployment that serves other services' routes on
the same door passes them in (``routers``), each built from the container's guards, and the desk's
reads of notify's records as ports (``case_notes``, ``rider_notes``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, FastAPI
from sqlalchemy.engine import Engine

from services.mediation.adapters import migrate
from services.mediation.entrypoints import scheduler, worker
from services.mediation.entrypoints.api.app import Container, create_app
from services.mediation.entrypoints.api.office import known_insurer
from services.mediation.service_layer.cases import Mediation
from services.mediation.service_layer.office import Office
from services.mediation.settings import MediationSettings
from shared.bus import Bus, make_bus
from shared.db import engine_for

Notes = Callable[[str], list[dict[str, Any]] | None]


@dataclass
class MediationService:
    settings: MediationSettings
    engine: Engine
    bus: Bus
    mediation: Mediation
    container: Container

    def http_app(self, *, routers: Iterable[Callable[[Container], APIRouter]] = (), case_notes: Notes | None = None,
                 rider_notes: Notes | None = None) -> FastAPI:
        """Mediation's API and pages, plus ``routers`` (each made from the container, whose guards
        ``require_mediator``, ``require_case_reader``, ``require_feeder`` it may use)."""
        from services.mediation.entrypoints.web import mount as mount_web

        app = create_app(self.container)
        for make in routers:
            app.include_router(make(self.container))
        mount_web(app, self.container, self.engine, self.settings, case_notes=case_notes, rider_notes=rider_notes)
        return app

    def known_insurer(self, code: str) -> str:
        """The registered spelling of an insurer code (NotFound if none): a port for notify."""
        return known_insurer(self.mediation, code)

    def subscribe(self) -> None:
        """Assessments and gap flags, in group ``XJ_MEDIATION_GROUP`` (before the bus starts)."""
        worker.subscribe(self.mediation, self.bus, self.settings.key_dir, self.container.poke,
                         self.settings.mediation_group)

    async def run(self, stop: asyncio.Event) -> None:
        """The background work until ``stop``: the outbox relay and the overdue scheduler."""
        tasks = [asyncio.create_task(worker.relay_outbox(self.mediation, self.bus, self.container.poke, stop),
                                     name="mediation:relay"),
                 asyncio.create_task(scheduler.run(Office(self.mediation), self.container.poke, stop),
                                     name="mediation:overdue")]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            with contextlib.suppress(Exception):
                await asyncio.gather(*tasks, return_exceptions=True)


def bootstrap(*, settings: MediationSettings | None = None, engine: Engine | None = None,
              bus: Bus | None = None) -> MediationService:
    settings = settings or MediationSettings()
    engine = engine if engine is not None else engine_for(settings)
    migrate.upgrade(engine)
    bus = bus if bus is not None else make_bus(settings)
    mediation = Mediation(engine, settings)
    container = Container(mediation=mediation, bus=bus, tz=settings.timezone, key_dir=settings.key_dir)
    return MediationService(settings, engine, bus, mediation, container)


__all__ = ["MediationService", "bootstrap"]
