"""The HTTP API of API_CONTRACT.md (prefix /api/v1), on FastAPI. Routes decode, call the service,
encode; rules live in the domain and the service."""


import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from services.mediation.entrypoints.api import cases, errors, evidence, rider
from services.mediation.entrypoints.api.deps import Unauthorized, make_guards
from services.mediation.service_layer.cases import Mediation
from shared.bus import Bus

logger = logging.getLogger(__name__)


@dataclass
class Container:
    """What the HTTP layer needs, wired by the bootstrap."""

    mediation: Mediation
    bus: Bus
    tz: str
    key_dir: Any
    poke: asyncio.Event = field(default_factory=asyncio.Event)  # wakes the outbox relay
    # the guards, set by create_app: FastAPI dependencies other services' routes may use
    require_user: Any = None
    require_mediator: Any = None
    require_case_reader: Any = None
    require_feeder: Any = None


def create_app(c: Container) -> FastAPI:
    app = FastAPI(title="Xianjie 衔接", version="1.0",
                  description="Evidence for gig riders' insurance disputes: cases, signed evidence packets, status.")
    errors.install(app)
    from services.mediation.entrypoints.api.limits import BodyLimits

    ms = c.mediation.settings
    app.add_middleware(BodyLimits, json_limit=ms.max_json_bytes, feed_limit=ms.max_body_bytes,
                       attachment_limit=ms.max_attachment_bytes)
    app.add_middleware(RefuseNul)
    g = make_guards(c.mediation)
    c.require_user, c.require_mediator, c.require_case_reader, c.require_feeder = g.user, g.mediator, g.case_reader, g.feeder
    app.include_router(cases.make_router(c, g))
    app.include_router(evidence.make_router(c, g))
    app.include_router(rider.make_router(c))
    from services.mediation.entrypoints.api import office as office_api
    from services.mediation.service_layer.office import Office

    office_api.install_errors(app)
    app.include_router(office_api.make_router(Office(c.mediation), g.user, g.mediator))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        try:
            await run_in_threadpool(c.mediation.pending_outbox, 1)
        except Exception:
            return JSONResponse({"status": "database unavailable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    @app.exception_handler(Unauthorized)
    async def _401(_: Request, e: Unauthorized) -> JSONResponse:
        return JSONResponse({"detail": "missing or invalid bearer token"}, status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})

    return app


class RefuseNul:
    """A NUL character in the path or the query names nothing (and PostgreSQL text cannot hold it,
    so the database would refuse the lookup): 404 for the path, 422 naming the query parameter, on
    every route (API and web pages) and every database alike."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if "\x00" in scope.get("path", ""):
                await JSONResponse({"detail": "no such resource: the path holds a NUL character"},
                                   status_code=404)(scope, receive, send)
                return
            query = scope.get("query_string", b"")
            if b"%00" in query or b"\x00" in query:
                names = sorted({k for k, v in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
                                if "\x00" in k or "\x00" in v})
                names = [n.replace("\x00", "\\0") for n in names] or ["query"]
                await JSONResponse({"detail": f"invalid request: {', '.join(names)}", "errors": [
                    {"loc": ["query", n], "msg": "must not contain a NUL character", "type": "value_error"}
                    for n in names]}, status_code=422)(scope, receive, send)
                return
        await self.app(scope, receive, send)


__all__ = ["Container", "create_app"]
