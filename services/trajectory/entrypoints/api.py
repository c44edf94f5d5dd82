"""The trajectory service's HTTP intake: ``POST /api/v1/feeds/platform-events`` and ``/feeds/gps``.

The owner of the feeds takes them in: each line is parsed once and stored before the answer goes
out, so an evidence request made after the answer sees every accepted line, whichever process or
worker answers it (they all read the one store). Who may upload is not this service's business:
``authorize`` is a FastAPI dependency the wiring injects (mediation's mediator-or-feed-token check
in this deployment); it raises to refuse.
"""


from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from services.trajectory.adapters.store import FeedStore
from services.trajectory.service_layer.handlers import Intake, take_gps, take_platform


class Rejected(BaseModel):
    line: int
    error: str


class FeedResult(BaseModel):
    accepted: int  # lines stored: new ones and duplicates
    duplicates: int  # of those, lines stored before (or repeated in this upload)
    rejected: list[Rejected]


def as_result(i: Intake) -> FeedResult:
    return FeedResult(accepted=i.accepted, duplicates=i.duplicates,
                      rejected=[Rejected(line=p.line, error=p.message) for p in i.rejected])


def make_router(store: FeedStore, authorize: Callable[..., Any], tz: str,
                on_stored: Callable[[Intake], None] | None = None) -> APIRouter:
    """The feed routes on ``store``; ``authorize`` guards both; ``on_stored`` hears of each upload
    once it is stored (the gap flagger)."""

    def told(i: Intake) -> FeedResult:
        if on_stored is not None and i.spans:
            on_stored(i)
        return as_result(i)

    router = APIRouter(prefix="/api/v1", tags=["feeds"])
    ndjson = {"requestBody": {"content": {"application/x-ndjson": {"schema": {"type": "string"}}}}}
    Uploader = Annotated[Any, Depends(authorize)]

    @router.post("/feeds/platform-events", response_model=FeedResult, openapi_extra=ndjson)
    async def feed_platform(request: Request, _: Uploader) -> FeedResult:
        """DATA_CONTRACT §1 lines (NDJSON, gzip accepted). Stored before the answer; bad lines are
        reported with their number and skipped; an event stored before counts as a duplicate."""
        body = await request.body()  # gunzipped and size-checked at the door (the app's body limits)
        return told(await run_in_threadpool(take_platform, store, body, tz=tz))

    @router.post("/feeds/gps", response_model=FeedResult, openapi_extra=ndjson)
    async def feed_gps(request: Request, _: Uploader) -> FeedResult:
        """DATA_CONTRACT §2 lines (NDJSON, gzip accepted). Stored before the answer; bad lines are
        reported with their number and skipped; a fix stored before counts as a duplicate."""
        body = await request.body()
        return told(await run_in_threadpool(take_gps, store, body, tz=tz))

    return router


__all__ = ["FeedResult", "make_router"]
