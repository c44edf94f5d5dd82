"""What the routes depend on: the bearer token's actor and the role guards, built once per app
from the case service; and the JSON encoding of the hot reads."""

from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from services.mediation.domain.errors import Forbidden
from services.mediation.domain.model import Actor, Role
from services.mediation.service_layer.cases import Mediation

bearer = HTTPBearer(auto_error=False)


class Unauthorized(Exception):
    pass


@dataclass(frozen=True)
class Guards:
    """FastAPI dependencies: ``user`` (any valid token), ``mediator``, ``case_reader`` (who may
    read the path's case) and ``feeder`` (who may upload feeds: a mediator or a feed token)."""

    user: Any
    mediator: Any
    case_reader: Any
    feeder: Any


def make_guards(mediation: Mediation) -> Guards:
    async def current(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Actor:
        if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
            raise Unauthorized()
        token = creds.credentials[:200]
        actor = mediation.remembered_actor(token) or await run_in_threadpool(mediation.authenticate, token)
        if actor is None:
            raise Unauthorized()
        return actor

    CurrentUser = Annotated[Actor, Depends(current)]

    async def mediator(actor: CurrentUser) -> Actor:
        if actor.role is not Role.MEDIATOR:
            raise Forbidden("mediators only")
        return actor

    async def case_reader(case_id: str, actor: CurrentUser) -> Actor:
        await run_in_threadpool(mediation.get_case, actor=actor, case_id=case_id)  # 404 if not theirs
        return actor

    async def uploader(actor: CurrentUser) -> Actor:
        """Who may upload feeds (the trajectory service's intake, mounted by the wiring)."""
        if actor.role not in (Role.MEDIATOR, Role.FEED):
            raise Forbidden("a mediator or feed token is needed")
        return actor

    return Guards(user=current, mediator=mediator, case_reader=case_reader, feeder=uploader)


def as_json(content: Any) -> Response:
    """JSON by orjson, for the hot reads (datetimes as ISO 8601)."""
    return Response(orjson.dumps(content), media_type="application/json")
