"""Web pages, server-rendered (Jinja2), served by the mediation app: the mediator desk at ``/``,
the insurer portal at ``/insurer/``, the rider's status page at ``/status``. Sessions live in a
signed HttpOnly SameSite cookie; every form carries a per-session CSRF token; Chinese by default,
``?lang=en`` / ``?lang=zh`` on any page switches (and is remembered in a cookie).

``mount(app, container, engine, settings)`` is what the bootstrap calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI
from sqlalchemy.engine import Engine
from starlette.responses import Response

from services.mediation.entrypoints.web.pages import Web
from services.mediation.entrypoints.web.session import Sessions, load_or_create_secret
from services.mediation.settings import MediationSettings
from shared.config import Settings


def make_router(web: Web) -> APIRouter:
    from services.mediation.entrypoints.web import desk, insurer, office, status

    router = APIRouter(include_in_schema=False)
    router.include_router(desk.make_router(web))
    router.include_router(insurer.make_router(web))
    router.include_router(status.make_router(web))
    router.include_router(office.make_router(web))

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        f = web.static.get(name)
        if f is None:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(f.body, media_type=f.media_type, headers={
            "cache-control": "public, max-age=86400", "x-content-type-options": "nosniff"})

    return router


Notes = Callable[[str], list[dict[str, Any]] | None]


def build(container: Any, engine: Engine, settings: MediationSettings, *, case_notes: Notes | None = None,
          rider_notes: Notes | None = None) -> Web:
    sessions = Sessions(load_or_create_secret(settings.data_dir),
                        https=settings.public_base_url.startswith("https://"))
    poke_event: asyncio.Event | None = getattr(container, "poke", None)

    def poke() -> None:  # called on the server's loop (async routes), like the API's
        if poke_event is not None:
            poke_event.set()

    web = Web(mediation=container.mediation, engine=engine, settings=settings, sessions=sessions, poke=poke)
    if case_notes is not None:
        web.case_notes = case_notes
    if rider_notes is not None:
        web.rider_notes = rider_notes
    return web


def mount(app: FastAPI, container: Any, engine: Engine, settings: Settings, *, case_notes: Notes | None = None,
          rider_notes: Notes | None = None) -> None:
    """The pages on ``app``; ``case_notes`` / ``rider_notes``: notify's records of a case (ports)."""
    ms = settings if isinstance(settings, MediationSettings) else MediationSettings()
    app.include_router(make_router(build(container, engine, ms, case_notes=case_notes, rider_notes=rider_notes)))


__all__ = ["mount", "make_router", "build", "Web"]
