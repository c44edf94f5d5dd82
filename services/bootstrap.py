"""The embedded default's wiring: the three services' own composition roots assembled in ONE
process, on one bus and one database, behind one HTTP door.

``python -m services up`` runs trajectory, mediation and notify this way on the in-process bus and
SQLite. ``python -m services serve`` runs the same HTTP door as its own process at scale
(``XJ_BUS=kafka``, PostgreSQL), beside ``python -m services.trajectory worker`` and
``python -m services.notify worker``: the door hosts every service's routes because they share
mediation's accounts (a feed token, a mediator's token), and it runs what answers a request (the
trajectory service's upload flagger, mediation's outbox relay and consumers).

The services do not import each other: what one needs of another is passed here, as a port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from sqlalchemy.engine import Engine

from shared.bus import make_bus
from shared.config import Settings
from shared.db import engine_for

logger = logging.getLogger(__name__)
SERVICES = ("trajectory", "mediation", "notify")


def database(settings: Settings, services: tuple[str, ...] = SERVICES) -> Engine:
    """The engine, with each named service's tables brought up to date (for tools and tests that
    prepare a database before the services start)."""
    engine = engine_for(settings)
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


async def run(services: tuple[str, ...] = SERVICES, *, port: int | None = None, ready: asyncio.Event | None = None,
              stop: asyncio.Event | None = None) -> None:
    """Run the named services until ``stop`` is set (or the server is interrupted). With
    ``mediation`` the HTTP door is served, with the trajectory service's feed intake on it."""
    from services.trajectory.bootstrap import bootstrap as trajectory_bootstrap

    settings = Settings()
    engine = engine_for(settings)
    bus = make_bus(settings)
    stop = stop or asyncio.Event()
    tasks: list[asyncio.Task[Any]] = []
    server = None
    if "trajectory" in services or "mediation" in services:  # the HTTP door takes the feeds in
        trajectory = trajectory_bootstrap(engine=engine, bus=bus)
        tasks.append(asyncio.create_task(trajectory.run_uploads(stop), name="trajectory:uploads"))
        if "trajectory" in services:
            tasks.append(asyncio.create_task(trajectory.run_handlers(stop), name="trajectory"))
    if "notify" in services:
        from services.notify.bootstrap import bootstrap as notify_bootstrap

        notify = notify_bootstrap(engine=engine, bus=bus)
        tasks.append(asyncio.create_task(notify.run(stop), name="notify"))
    if "mediation" in services:
        import uvicorn

        from services.mediation.bootstrap import bootstrap as mediation_bootstrap

        mediation = mediation_bootstrap(engine=engine, bus=bus)
        app = door(mediation, trajectory, engine)
        mediation.subscribe()
        tasks.append(asyncio.create_task(mediation.run(stop), name="mediation"))
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
            await asyncio.wait([serving, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
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


def door(mediation: Any, trajectory: Any, engine: Engine) -> Any:
    """The one HTTP door: mediation's API and pages, the trajectory service's feed intake and
    notify's routes, each given what it needs of another through a port."""
    from services.notify.entrypoints import api as notify_api

    def notify_routes(c: Any) -> Any:
        return notify_api.make_router(c.require_mediator, c.require_case_reader, get_engine=lambda: engine,
                                      known_insurer=mediation.known_insurer,
                                      allow_private=mediation.settings.webhook_allow_private)

    return mediation.http_app(
        routers=(lambda c: trajectory.router(c.require_feeder), notify_routes),  # the feeds' owner takes them in
        case_notes=lambda cid: _notes(notify_api.case_notes, engine, cid),
        rider_notes=lambda cid: _notes(notify_api.notifications_for_case, engine, cid))


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
