"""Routes of the cases: open, list, read, evidence requests, transitions, the insurer's answer, the audit trail."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from services.mediation.domain.errors import Forbidden
from services.mediation.domain.model import Actor, Role, Status
from services.mediation.entrypoints.api.deps import Guards, as_json
from services.mediation.schemas import CaseCreate, CaseCreated, InsurerResponseIn, TransitionIn


def make_router(c: Any, g: Guards) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    CurrentUser = Annotated[Actor, Depends(g.user)]
    Mediator = Annotated[Actor, Depends(g.mediator)]

    def poke() -> None:
        c.poke.set()

    @router.post("/cases", status_code=201, response_model=CaseCreated, tags=["cases"])
    async def open_case(cmd: CaseCreate, actor: Mediator) -> CaseCreated:
        row, code = await run_in_threadpool(c.mediation.open_case, actor=actor, cmd=cmd)
        poke()
        return CaseCreated(case_id=row.id, case_number=row.case_number, status=Status(row.status),
                           rider_access_code=code)

    @router.get("/cases", tags=["cases"])
    async def list_cases(actor: CurrentUser,
                         status: Annotated[Status | None, Query()] = None,
                         insurer: Annotated[str | None, Query(max_length=32)] = None,
                         q: Annotated[str | None, Query(max_length=100, description="case, claim, policy, rider")] = None,
                         overdue: Annotated[bool | None, Query()] = None,
                         limit: Annotated[int, Query(ge=1, le=200)] = 50,
                         offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> dict[str, Any]:
        return await run_in_threadpool(c.mediation.list_cases, actor=actor, status=status.value if status else None,
                                       insurer=insurer, q=q, overdue=overdue, limit=limit, offset=offset)

    @router.get("/cases/{case_id}", tags=["cases"])
    async def get_case(case_id: str, actor: CurrentUser) -> Response:
        hit = c.mediation.remembered_case(actor, case_id)  # no thread hop for a read just made
        return as_json(hit if hit is not None else
                       await run_in_threadpool(c.mediation.get_case, actor=actor, case_id=case_id))

    @router.post("/cases/{case_id}/evidence-requests", status_code=202, tags=["cases"])
    async def request_evidence(case_id: str, actor: Mediator) -> dict[str, Any]:
        rid = await run_in_threadpool(c.mediation.request_evidence, actor=actor, case_id=case_id)
        poke()
        return {"request_id": rid, "status": Status.EVIDENCE_REQUESTED.value}

    @router.post("/cases/{case_id}/transitions", tags=["cases"])
    async def transition(case_id: str, body: TransitionIn, actor: CurrentUser) -> dict[str, Any]:
        out = await run_in_threadpool(c.mediation.transition, actor=actor, case_id=case_id, to=body.to,
                                      reason=body.reason)
        poke()
        return out

    @router.post("/cases/{case_id}/insurer-response", tags=["cases"])
    async def insurer_response(case_id: str, body: InsurerResponseIn, actor: CurrentUser) -> dict[str, Any]:
        if actor.role is not Role.INSURER:
            raise Forbidden("insurers only")
        out = await run_in_threadpool(c.mediation.insurer_response, actor=actor, case_id=case_id,
                                      decision=body.decision, reason=body.reason)
        poke()
        return out

    @router.get("/cases/{case_id}/audit", tags=["cases"])
    async def audit_trail(case_id: str, actor: CurrentUser) -> dict[str, Any]:
        return await run_in_threadpool(c.mediation.audit_trail, actor=actor, case_id=case_id)

    return router
