"""Domain exceptions to HTTP status codes, in one place. Nothing a client sends may produce a 500."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from services.mediation.domain.errors import ConsentMissing, Forbidden, IllegalTransition, NotFound
from services.mediation.service_layer.cases import Locked

logger = logging.getLogger(__name__)


def install(app: FastAPI) -> None:
    @app.exception_handler(NotFound)
    async def _404(_: Request, e: NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=404)

    @app.exception_handler(Forbidden)
    async def _403(_: Request, e: Forbidden) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=403)

    @app.exception_handler(IllegalTransition)
    async def _409(_: Request, e: IllegalTransition) -> JSONResponse:
        return JSONResponse({"detail": str(e), "current": e.current.value,
                             "allowed": [s.value for s in e.allowed]}, status_code=409)

    @app.exception_handler(ConsentMissing)
    async def _409c(_: Request, e: ConsentMissing) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=409)

    @app.exception_handler(Locked)
    async def _429(_: Request, e: Locked) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=429, headers={"Retry-After": "900"})

    @app.exception_handler(RequestValidationError)
    async def _422(_: Request, e: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": err.get("type")}
                  for err in e.errors()]
        fields = ", ".join(".".join(str(p) for p in err["loc"] if p != "body") or "body" for err in errors)
        return JSONResponse({"detail": f"invalid request: {fields}", "errors": errors}, status_code=422)

    @app.exception_handler(OperationalError)
    @app.exception_handler(PoolTimeout)
    async def _503(_: Request, e: Exception) -> JSONResponse:
        logger.error("database unavailable: %s", e)
        return JSONResponse({"detail": "the database is unavailable; try again shortly"}, status_code=503,
                            headers={"Retry-After": "5"})

    @app.exception_handler(DBAPIError)
    async def _db(_: Request, e: DBAPIError) -> JSONResponse:
        if e.connection_invalidated:
            return JSONResponse({"detail": "the database is unavailable; try again shortly"}, status_code=503)
        logger.exception("database error")
        return JSONResponse({"detail": "the request could not be stored"}, status_code=409)
