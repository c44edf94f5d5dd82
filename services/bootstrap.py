"""Wiring: the one place that builds engines, the bus, the services and the HTTP server.

``python -m services up`` runs trajectory, mediation and notify in ONE process on the in-process
bus and SQLite (the embedded default); ``python -m services.<name> serve|worker`` runs one service
as its own process, on Kafka when ``XJ_BUS=kafka``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy.engine import Engine

from shared.bus import Bus, InMemoryBus
from shared.config import Settings
from shared.db import database_url, make_engine

logger = logging.getLogger(__name__)
SERVICES = ("trajectory", "mediation", "notify")


def database(settings: Settings, services: tuple[str, ...] = SERVICES) -> Engine:
    """The engine, with each named service's tables brought up to date."""
    engine = make_engine(database_url(settings.database_url, settings.data_dir))
    for name in services:
        if name == "mediation":
            from services.mediation.adapters import migrate

            migrate.upgrade(engine)
        elif name == "notify":
            from services.notify.adapters import migrate as notify_migrate

            notify_migrate.upgrade(engine)
        else:
            from services.trajectory.adapters.store import migrate as trajectory_migrate

            trajectory_migrate(engine)
    return engine


def make_bus(settings: Settings) -> Bus:
    if settings.bus == "kafka":
        from shared.bus_kafka import KafkaBus

        return KafkaBus(settings.kafka_bootstrap)  # type: ignore[return-value]
    if settings.bus != "memory":
        raise SystemExit(f"XJ_BUS must be memory or kafka, not {settings.bus!r}")
    return InMemoryBus()


async def run(services: tuple[str, ...] = SERVICES, *, port: int | None = None, ready: asyncio.Event | None = None,
              stop: asyncio.Event | None = None) -> None:
    """Run the named services until ``stop`` is set (or the server is interrupted)."""
    from services.mediation.settings import MediationSettings

    settings = MediationSettings()
    engine = database(settings, services)
    bus = make_bus(settings)
    stop = stop or asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []
    server = None
    trajectory = None
    if "trajectory" in services or "mediation" in services:  # the HTTP server takes the feeds in
        from services.trajectory.bootstrap import bootstrap as trajectory_bootstrap

        trajectory = trajectory_bootstrap(engine=engine, bus=bus)
        tasks.append(asyncio.create_task(trajectory.run_uploads(stop), name="trajectory:uploads"))
    if "trajectory" in services and trajectory is not None:
        tasks.append(asyncio.create_task(trajectory.run_handlers(stop), name="trajectory"))
    if "notify" in services:
        from services.notify.entrypoints.worker import run as run_notify

        tasks.append(asyncio.create_task(run_notify(bus, engine, settings, stop), name="notify"))
    if "mediation" in services:
        import uvicorn

        from services.mediation.entrypoints import worker as runtime

        assert trajectory is not None
        app, container = http_app(settings, engine, bus, trajectory)
        mediation = container.mediation
        runtime.subscribe(mediation, bus, settings.key_dir, container.poke, mediation.settings.mediation_group)
        tasks.append(asyncio.create_task(runtime.relay_outbox(mediation, bus, container.poke, stop), name="relay"))
        from services.mediation.entrypoints import scheduler
        from services.mediation.service_layer.office import Office

        tasks.append(asyncio.create_task(scheduler.run(Office(mediation), container.poke, stop), name="overdue"))
        config = uvicorn.Config(app, host="127.0.0.1", port=port or settings.http_port, log_level="warning",
                                access_log=False)
        server = uvicorn.Server(config)
    await asyncio.sleep(0)  # let the services subscribe before the bus starts
    await bus.start()
    try:
        if server is not None:
            serving = asyncio.create_task(server.serve(), name="http")
            while not server.started and not serving.done():
                await asyncio.sleep(0.05)
            logger.info("serving on http://127.0.0.1:%s", server.config.port)
            if ready is not None:
                ready.set()
            done, _ = await asyncio.wait([serving, asyncio.create_task(stop.wait())],
                                         return_when=asyncio.FIRST_COMPLETED)
            server.should_exit = True
            await serving
        else:
            if ready is not None:
                ready.set()
            await stop.wait()
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        await bus.stop()
        engine.dispose()


def http_app(settings: Any, engine: Engine, bus: Bus, trajectory: Any) -> tuple[Any, Any]:
    """The one HTTP server: mediation's API and pages, the trajectory service's feed intake and
    notify's reads, on one FastAPI app. Returns the app and mediation's container."""
    from services.mediation.entrypoints.api.app import Container, create_app
    from services.mediation.service_layer.cases import Mediation

    container = Container(mediation=Mediation(engine, settings), bus=bus, tz=settings.timezone,
                          key_dir=settings.key_dir)
    app = create_app(container)
    app.include_router(trajectory.router(container.require_feeder))  # the feeds' owner takes them in
    _mount_extras(app, container, engine, settings)
    return app, container


def _mount_extras(app: Any, container: Any, engine: Engine, settings: Any) -> None:
    """notify's routes and mediation's pages on the same server, each given what it needs of the
    other through a port (the services do not import each other)."""
    from services.mediation.entrypoints.api.office import known_insurer
    from services.mediation.entrypoints.web import mount as mount_web
    from services.notify.entrypoints import api as notify_api

    mount_web(app, container, engine, settings, case_notes=lambda cid: _notes(notify_api.case_notes, engine, cid),
              rider_notes=lambda cid: _notes(notify_api.notifications_for_case, engine, cid))
    app.include_router(notify_api.make_router(
        container.require_mediator, container.require_case_reader, get_engine=lambda: engine,
        known_insurer=lambda code: known_insurer(container.mediation, code),
        allow_private=settings.webhook_allow_private))


def _notes(read: Any, engine: Engine, case_id: str) -> list[dict[str, Any]] | None:
    """notify's records of a case; None when its tables are not in this database."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        return list(read(engine, case_id))
    except SQLAlchemyError as e:
        logger.info("no notifications here: %s", str(e)[:200])
        return None


def serve(only: str | None = None) -> int:
    services = SERVICES if only is None else (only,)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(services))
    return 0
