"""The HTTP API of API_CONTRACT.md (prefix /api/v1), on FastAPI. Routes decode, call the service,
encode; rules live in the domain and the service."""


import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from services.mediation.domain.coverage import rider_note
from services.mediation.domain.errors import Forbidden, NotFound
from services.mediation.domain.model import Actor, Role, Status
from services.mediation.entrypoints.api import errors
from services.mediation.schemas import (
    CaseCreate,
    CaseCreated,
    InsurerResponseIn,
    TransitionIn,
)
from services.mediation.service_layer.cases import Locked, Mediation
from shared.bus import Bus

logger = logging.getLogger(__name__)

STATUS_ZH = {
    "opened": "已立案", "evidence_requested": "正在调取轨迹证据", "evidence_ready": "证据已生成",
    "under_review": "调解员审查中", "proposal_sent": "调解方案已发送保险公司", "insurer_accepted": "保险公司已同意理赔",
    "resolved": "已解决", "closed": "已结案", "insurer_rejected": "保险公司拒绝，调解继续", "escalated": "已转交上级处理",
    "withdrawn": "已撤回",
}
STATUS_EN = {
    "opened": "Case opened", "evidence_requested": "Fetching the trajectory evidence", "evidence_ready": "Evidence ready",
    "under_review": "Under review by the mediator", "proposal_sent": "Proposal sent to the insurer",
    "insurer_accepted": "The insurer agreed to pay", "resolved": "Resolved", "closed": "Closed",
    "insurer_rejected": "The insurer refused; mediation continues", "escalated": "Escalated", "withdrawn": "Withdrawn",
}
NEXT_ZH = {
    "opened": "调解员将调取您当天的订单和轨迹记录，无需您操作。",
    "evidence_requested": "系统正在分析轨迹，通常几分钟内完成。",
    "evidence_ready": "调解员将审查证据并与保险公司沟通。",
    "under_review": "调解员正在审查，可能会联系您补充情况。",
    "proposal_sent": "等待保险公司答复，答复期限见下方。",
    "insurer_accepted": "保险公司已同意，调解员将确认赔付后结案。",
    "resolved": "赔付已确认。如有疑问请联系调解员。",
    "closed": "案件已结束。",
    "insurer_rejected": "调解员将与保险公司继续协商，或建议其他途径。",
    "escalated": "案件已转交上级部门，调解员会通知您进展。",
    "withdrawn": "案件已撤回。",
}
NEXT_EN = {
    "opened": "The mediator will obtain your orders and trajectory for that day; nothing for you to do.",
    "evidence_requested": "The trajectory is being analysed; this usually takes minutes.",
    "evidence_ready": "The mediator will review the evidence and talk to the insurer.",
    "under_review": "The mediator is reviewing; you may be asked for details.",
    "proposal_sent": "Waiting for the insurer's answer; see the deadline below.",
    "insurer_accepted": "The insurer agreed; the mediator will confirm payment and close the case.",
    "resolved": "Payment confirmed. Contact your mediator with any question.",
    "closed": "The case is closed.",
    "insurer_rejected": "The mediator will keep negotiating with the insurer or advise other routes.",
    "escalated": "The case went to a higher authority; the mediator will keep you informed.",
    "withdrawn": "The case was withdrawn.",
}


@dataclass
class Container:
    """What the HTTP layer needs, wired by the bootstrap."""

    mediation: Mediation
    bus: Bus
    tz: str
    key_dir: Any
    poke: asyncio.Event = field(default_factory=asyncio.Event)  # wakes the outbox relay
    extra_routers: list[APIRouter] = field(default_factory=list)


bearer = HTTPBearer(auto_error=False)


def create_app(c: Container) -> FastAPI:
    app = FastAPI(title="Xianjie 衔接", version="1.0",
                  description="Evidence for gig riders' insurance disputes: cases, signed evidence packets, status.")
    errors.install(app)
    from services.mediation.entrypoints.api.limits import BodyLimits

    ms = c.mediation.settings
    app.add_middleware(BodyLimits, json_limit=ms.max_json_bytes, feed_limit=ms.max_body_bytes,
                       attachment_limit=ms.max_attachment_bytes)
    app.add_middleware(RefuseNul)
    api = APIRouter(prefix="/api/v1")

    async def current(creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Actor:
        if creds is None or creds.scheme.lower() != "bearer" or not creds.credentials:
            raise Unauthorized()
        token = creds.credentials[:200]
        actor = c.mediation.remembered_actor(token) or await run_in_threadpool(c.mediation.authenticate, token)
        if actor is None:
            raise Unauthorized()
        return actor

    CurrentUser = Annotated[Actor, Depends(current)]

    async def mediator(actor: CurrentUser) -> Actor:
        if actor.role is not Role.MEDIATOR:
            raise Forbidden("mediators only")
        return actor

    Mediator = Annotated[Actor, Depends(mediator)]

    async def case_reader(case_id: str, actor: CurrentUser) -> Actor:
        await run_in_threadpool(c.mediation.get_case, actor=actor, case_id=case_id)  # 404 if not theirs
        return actor

    c.require_mediator = mediator  # type: ignore[attr-defined]
    c.require_case_reader = case_reader  # type: ignore[attr-defined]
    c.require_user = current  # type: ignore[attr-defined]

    def poke() -> None:
        c.poke.set()

    async def uploader(actor: CurrentUser) -> Actor:
        """Who may upload feeds (the trajectory service's intake, mounted by the wiring)."""
        if actor.role not in (Role.MEDIATOR, Role.FEED):
            raise Forbidden("a mediator or feed token is needed")
        return actor

    c.require_feeder = uploader  # type: ignore[attr-defined]

    # ------------------------------------------------------------ cases

    @api.post("/cases", status_code=201, response_model=CaseCreated, tags=["cases"])
    async def open_case(cmd: CaseCreate, actor: Mediator) -> CaseCreated:
        row, code = await run_in_threadpool(c.mediation.open_case, actor=actor, cmd=cmd)
        poke()
        return CaseCreated(case_id=row.id, case_number=row.case_number, status=Status(row.status),
                           rider_access_code=code)

    @api.get("/cases", tags=["cases"])
    async def list_cases(actor: CurrentUser,
                         status: Annotated[Status | None, Query()] = None,
                         insurer: Annotated[str | None, Query(max_length=32)] = None,
                         q: Annotated[str | None, Query(max_length=100, description="case, claim, policy, rider")] = None,
                         overdue: Annotated[bool | None, Query()] = None,
                         limit: Annotated[int, Query(ge=1, le=200)] = 50,
                         offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> dict[str, Any]:
        return await run_in_threadpool(c.mediation.list_cases, actor=actor, status=status.value if status else None,
                                       insurer=insurer, q=q, overdue=overdue, limit=limit, offset=offset)

    @api.get("/cases/{case_id}", tags=["cases"])
    async def get_case(case_id: str, actor: CurrentUser) -> Response:
        hit = c.mediation.remembered_case(actor, case_id)  # no thread hop for a read just made
        return as_json(hit if hit is not None else
                       await run_in_threadpool(c.mediation.get_case, actor=actor, case_id=case_id))

    @api.post("/cases/{case_id}/evidence-requests", status_code=202, tags=["cases"])
    async def request_evidence(case_id: str, actor: Mediator) -> dict[str, Any]:
        rid = await run_in_threadpool(c.mediation.request_evidence, actor=actor, case_id=case_id)
        poke()
        return {"request_id": rid, "status": Status.EVIDENCE_REQUESTED.value}

    @api.post("/cases/{case_id}/transitions", tags=["cases"])
    async def transition(case_id: str, body: TransitionIn, actor: CurrentUser) -> dict[str, Any]:
        out = await run_in_threadpool(c.mediation.transition, actor=actor, case_id=case_id, to=body.to,
                                      reason=body.reason)
        poke()
        return out

    @api.post("/cases/{case_id}/insurer-response", tags=["cases"])
    async def insurer_response(case_id: str, body: InsurerResponseIn, actor: CurrentUser) -> dict[str, Any]:
        if actor.role is not Role.INSURER:
            raise Forbidden("insurers only")
        out = await run_in_threadpool(c.mediation.insurer_response, actor=actor, case_id=case_id,
                                      decision=body.decision, reason=body.reason)
        poke()
        return out

    @api.get("/cases/{case_id}/evidence-packet", tags=["evidence"],
             responses={200: {"content": {"application/pdf": {}}, "description": "JSON, or PDF with ?format=pdf"}})
    async def evidence_packet(case_id: str, actor: CurrentUser,
                              format: Annotated[str, Query(pattern="^(json|pdf)$")] = "json",
                              packet_id: Annotated[str | None, Query(max_length=36, description=(
                                  "an earlier packet of the case (default: the current one; an insurer: the one "
                                  "sent with the proposal)"))] = None) -> Response:
        """The signed packet. An insurer sees it once the mediator has sent the proposal (403 before):
        the packet that was current at ``proposal_sent``."""
        raw = await run_in_threadpool(c.mediation.packet_bytes, actor=actor, case_id=case_id, packet_id=packet_id)
        if format == "pdf":
            import orjson

            from services.mediation.packet.pdf import render_pdf

            packet = orjson.loads(raw)
            pdf = await run_in_threadpool(render_pdf, packet)
            number = packet.get("case", {}).get("case_number", case_id)
            return Response(pdf, media_type="application/pdf",
                            headers={"Content-Disposition": f'attachment; filename="{number}.pdf"'})
        return Response(raw, media_type="application/json")  # the signed bytes, unchanged

    @api.get("/cases/{case_id}/gaps", tags=["evidence"])
    async def case_gaps(case_id: str, actor: CurrentUser) -> Response:
        """The rider's gaps between orders inside the evidence window, as the trajectory service
        flagged them when the orders closed (the insurer: from ``proposal_sent``)."""
        from services.mediation.service_layer.flags import case_gaps as read

        return as_json(await run_in_threadpool(read, c.mediation, actor=actor, case_id=case_id))

    @api.get("/cases/{case_id}/audit", tags=["cases"])
    async def audit_trail(case_id: str, actor: CurrentUser) -> dict[str, Any]:
        return await run_in_threadpool(c.mediation.audit_trail, actor=actor, case_id=case_id)

    # ------------------------------------------------------------ public

    @api.get("/keys", tags=["evidence"])
    async def keys() -> dict[str, Any]:
        """The public keys evidence packets are signed with (Ed25519)."""
        from services.mediation.packet.sign import published_keys

        return {"keys": published_keys(c.key_dir)}

    @api.post("/packets/verify", tags=["evidence"])
    async def verify(request: Request) -> dict[str, Any]:
        """Check a packet's hashes and signature against the published keys (public). Packets of
        format ``xianjie.evidence-packet/2`` (signed over their RFC 8785 form) and of the earlier
        ``/1`` are both accepted; docs/verify.md shows how to check one without this service."""
        from services.mediation.packet.sign import verify_bytes

        v = await run_in_threadpool(verify_bytes, await request.body(), c.key_dir)
        return {"valid": v.ok, "problems": v.problems}

    @api.get("/status/{case_number}", tags=["rider"],
             responses={404: {"description": "no case with this number and code"},
                        429: {"description": "too many wrong codes for this case, or from this client"}})
    async def rider_status(request: Request, case_number: Annotated[str, Depends(_case_number)],
                           code: Annotated[str, Query(min_length=1, max_length=32)],
                           lang: Annotated[str | None, Query(pattern="^(zh|en)$")] = None) -> Response:
        """Status, plain next step and last update of a case, for the holder of its access code."""
        client = request.client.host if request.client else None
        try:
            st = (c.mediation.remembered_status(case_number, code, client)
                  or await run_in_threadpool(c.mediation.rider_status, case_number=case_number, code=code,
                                             client=client))
        except Locked as e:  # in the rider's language (Chinese unless he asked otherwise), local time
            from services.mediation.entrypoints.api.office import locked_response

            return locked_response(e, lang or "zh", c.tz)
        if st is None:
            raise NotFound("no case with this number and code")
        return as_json(status_view(st, lang or st["lang"]))

    app.include_router(api)
    from services.mediation.entrypoints.api import office as office_api
    from services.mediation.service_layer.office import Office

    office_api.install_errors(app)
    app.include_router(office_api.make_router(Office(c.mediation), current, mediator))
    for r in c.extra_routers:
        app.include_router(r)

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


def as_json(content: Any) -> Response:
    """JSON by orjson, for the hot reads (datetimes as ISO 8601)."""
    return Response(orjson.dumps(content), media_type="application/json")


async def _case_number(case_number: str) -> str:
    if len(case_number) > 64:
        raise NotFound("no case with this number and code")
    return case_number


def status_view(st: dict[str, Any], lang: str) -> dict[str, Any]:
    s = st["status"]
    zh = lang != "en"
    deadline: datetime | None = st.get("deadline")
    step = (NEXT_ZH if zh else NEXT_EN)[s]
    note = rider_note(st.get("phase"), s, "zh" if zh else "en")
    return {"case_number": st["case_number"], "status": s, "status_label": (STATUS_ZH if zh else STATUS_EN)[s],
            "next_step": f"{note}{'' if zh else ' '}{step}" if note else step, "updated_at": st["updated_at"].isoformat(),
            "deadline": deadline.isoformat() if deadline else None, "lang": "zh" if zh else "en",
            "office": st.get("office")}


class Unauthorized(Exception):
    pass


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
