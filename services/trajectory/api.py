"""The trajectory service's HTTP intake: ``POST /api/v1/feeds/platform-events`` and ``/feeds/gps``.

The owner of the feeds takes them in: each line is parsed once and stored before the answer goes
out, so an evidence request made after the answer sees every accepted line, whichever process or
worker answers it (they all read the one store). Who may upload is not this service's business:
``authorize`` is a FastAPI dependency the wiring injects (mediation's mediator-or-feed-token check
in this deployment); it raises to refuse.
"""


import zlib
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from services.trajectory.adapters.store import FeedStore
from services.trajectory.service import Intake, take_gps, take_platform

FEED_LIMIT = 64 << 20  # bytes of NDJSON per upload, after gzip


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


async def body_of(request: Request, limit: int = FEED_LIMIT) -> bytes:
    """The upload's NDJSON: gunzipped when sent with ``Content-Encoding: gzip``; 413 past ``limit``."""
    raw = await request.body()
    if request.headers.get("content-encoding", "").strip().lower() != "gzip":
        if len(raw) > limit:
            raise HTTPException(413, f"feed larger than the limit of {limit} bytes ({limit >> 20} MiB)")
        return raw
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(raw, limit + 1)
    except zlib.error as e:
        raise HTTPException(400, f"Content-Encoding gzip, but the body is not gzip: {e}") from e
    if len(out) > limit or d.unconsumed_tail:
        raise HTTPException(413, f"feed larger than the limit of {limit} bytes ({limit >> 20} MiB) once unzipped")
    return out


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
        body = await body_of(request)
        return told(await run_in_threadpool(take_platform, store, body, tz=tz))

    @router.post("/feeds/gps", response_model=FeedResult, openapi_extra=ndjson)
    async def feed_gps(request: Request, _: Uploader) -> FeedResult:
        """DATA_CONTRACT §2 lines (NDJSON, gzip accepted). Stored before the answer; bad lines are
        reported with their number and skipped; a fix stored before counts as a duplicate."""
        body = await body_of(request)
        return told(await run_in_threadpool(take_gps, store, body, tz=tz))

    return router


__all__ = ["FEED_LIMIT", "FeedResult", "make_router"]
