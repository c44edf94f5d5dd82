"""Routes of the office features: corrections (PATCH /cases/{id}), attachments, reports, and the
mapping of their errors. Decode, call :class:`services.mediation.service_layer.office.Office`, encode."""


from datetime import date
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from services.mediation.domain.model import Actor
from services.mediation.schemas import CaseCorrection
from services.mediation.service_layer.office import (
    KINDS,
    BadAttachment,
    CorrectionRefused,
    Office,
    TooLarge,
    UnknownInsurer,
    report_csv,
)


def install_errors(app: FastAPI) -> None:
    @app.exception_handler(UnknownInsurer)
    async def _unknown(_: Request, e: UnknownInsurer) -> JSONResponse:
        return JSONResponse({"detail": f"invalid request: insurer_code: {e}",
                             "errors": [{"loc": ["body", "insurer_code"], "msg": str(e), "type": "unknown_insurer"}]},
                            status_code=422)

    @app.exception_handler(CorrectionRefused)
    async def _refused(_: Request, e: CorrectionRefused) -> JSONResponse:
        return JSONResponse({"detail": str(e)}, status_code=409)

    @app.exception_handler(BadAttachment)
    async def _bad(_: Request, e: BadAttachment) -> JSONResponse:
        return JSONResponse({"detail": f"invalid request: file: {e}",
                             "errors": [{"loc": ["body", "file"], "msg": str(e), "type": "content_type"}]},
                            status_code=415)

    @app.exception_handler(TooLarge)
    async def _large(_: Request, e: TooLarge) -> JSONResponse:
        return JSONResponse({"detail": str(e), "limit": e.limit}, status_code=413)


def make_router(office: Office, user: Any, mediator: Any) -> APIRouter:
    r = APIRouter(prefix="/api/v1")
    CurrentUser = Annotated[Actor, Depends(user)]
    Mediator = Annotated[Actor, Depends(mediator)]

    @r.patch("/cases/{case_id}", tags=["cases"])
    async def correct_case(case_id: str, body: CaseCorrection, actor: Mediator) -> Any:
        """Correct what was entered at opening, until the case is resolved. Every change goes into
        the history and the audit trail with its old and new value; a change to the rider or the
        incident marks existing evidence stale (request it again)."""
        return await run_in_threadpool(office.correct_case, actor=actor, case_id=case_id, changes=body.changes(),
                                       reason=body.reason)

    @r.post("/cases/{case_id}/attachments", status_code=201, tags=["attachments"],
            responses={413: {"description": "larger than 20 MiB"}, 415: {"description": "not a PDF, JPEG, PNG or HEIC"}})
    async def add_attachment(case_id: str, actor: Mediator,
                             file: Annotated[UploadFile, File(description="PDF, JPEG, PNG or HEIC, at most 20 MiB")],
                             kind: Annotated[str, Form(pattern="^(" + "|".join(KINDS) + ")$")],
                             description: Annotated[str, Form(max_length=2000)] = "") -> Any:
        limit = office.med.settings.max_attachment_bytes
        data = await file.read(limit + 1)
        if len(data) > limit:
            raise TooLarge(limit, "attachment")
        if "\x00" in description:
            description = description.replace("\x00", "")
        return await run_in_threadpool(office.add_attachment, actor=actor, case_id=case_id, data=data,
                                       filename=file.filename, kind=kind, description=description)

    @r.get("/cases/{case_id}/attachments", tags=["attachments"])
    async def list_attachments(case_id: str, actor: CurrentUser) -> Any:
        """Mediator; the case's insurer from proposal_sent on."""
        return {"items": await run_in_threadpool(office.list_attachments, actor=actor, case_id=case_id)}

    @r.get("/cases/{case_id}/attachments/{attachment_id}", tags=["attachments"],
           responses={200: {"content": {"application/pdf": {}, "image/jpeg": {}, "image/png": {}, "image/heic": {}}}})
    async def get_attachment(case_id: str, attachment_id: str, actor: CurrentUser) -> Response:
        att, data = await run_in_threadpool(office.attachment, actor=actor, case_id=case_id,
                                            attachment_id=attachment_id)
        return Response(data, media_type=att.content_type, headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(att.filename)}",
            "X-Content-SHA256": att.sha256, "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox"})

    @r.get("/reports/insurers", tags=["reports"],
           responses={200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with &format=csv"}})
    async def insurer_report(actor: Mediator,
                             from_: Annotated[date | None, Query(alias="from")] = None,
                             to: Annotated[date | None, Query()] = None,
                             format: Annotated[str, Query(pattern="^(json|csv)$")] = "json") -> Any:
        """Per insurer, over the cases of your office opened from ``from`` to ``to`` (local dates,
        inclusive): opened, accepted, rejected, pending, withdrawn, median days to resolution, and
        how many the evidence showed as continuous delivery (and of those, how many were refused)."""
        rows = await run_in_threadpool(office.report, actor=actor, start=from_, end=to)
        if format == "csv":
            return Response(report_csv(rows), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": 'attachment; filename="insurers.csv"'})
        return {"from": from_, "to": to, "insurers": rows}

    return r


def locked_response(e: Any, lang: str, tz: str) -> JSONResponse:
    """429 for a locked case number or client: until when, in the rider's language and local time."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    local = e.until.astimezone(ZoneInfo(tz))
    wait = max(1, int((e.until - datetime.now(UTC)).total_seconds()))
    if lang == "en":
        text = f"Too many wrong codes. Try again after {local:%Y-%m-%d %H:%M} ({tz})."
    else:
        text = f"错误的查询码次数过多，请于 {local:%Y年%m月%d日 %H:%M} 后再试。"
    return JSONResponse({"detail": text, "until": local.isoformat(), "lang": "en" if lang == "en" else "zh"},
                        status_code=429, headers={"Retry-After": str(wait)})


def known_insurer(med: Any, code: str) -> str:
    """The registered spelling of an insurer code; NotFound (404) if no insurer has it."""
    from sqlmodel import Session

    from services.mediation.domain.errors import NotFound
    from services.mediation.service_layer.office import find_insurer

    with Session(med.engine) as s:
        try:
            row = find_insurer(s, code, med.settings.insurers)
            s.commit()
            return str(row.code)
        except UnknownInsurer as e:
            raise NotFound(f"no insurer with code {code!r}") from e
